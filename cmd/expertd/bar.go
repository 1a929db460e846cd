package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// bar shows transfer progress: a redrawn bar with rate and ETA on a
// terminal, a plain line every few seconds otherwise.
type bar struct {
	w     io.Writer
	what  string
	tty   bool
	start time.Time
	last  time.Time
}

func newBar(w io.Writer, what string) *bar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &bar{w: w, what: what, tty: tty, start: time.Now()}
}

func (b *bar) update(done, total uint64) { b.draw(done, total, false) }

// finish draws the final state and ends the line.
func (b *bar) finish(done, total uint64) {
	b.draw(done, total, true)
	if b.tty {
		fmt.Fprintln(b.w)
	}
}

func (b *bar) draw(done, total uint64, final bool) {
	now := time.Now()
	if !final && (total == 0 || !b.tty && now.Sub(b.last) < 2*time.Second) {
		return
	}
	b.last = now
	el := now.Sub(b.start).Seconds()
	rate := float64(done) / max(el, 1e-3)
	eta := "?"
	if rate > 0 && total >= done {
		eta = (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second).String()
	}
	pct := 0.0
	if total > 0 {
		pct = float64(done) / float64(total)
	}
	line := fmt.Sprintf("%s %s / %s  %s/s  ETA %s", b.what, human(int64(done)), human(int64(total)), human(int64(rate)), eta)
	if b.tty {
		n := int(pct * 30)
		fmt.Fprintf(b.w, "\r[%s%s] %3.0f%% %s", strings.Repeat("#", n), strings.Repeat(" ", 30-n), pct*100, line)
		return
	}
	fmt.Fprintf(b.w, "%3.0f%% %s\n", pct*100, line)
}
