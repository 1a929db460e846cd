package main

import (
	"fmt"
	"io"
	"time"
)

// progress prints "what: NN%" lines to w for work that takes over a second,
// at most twice a second.
type progress struct {
	w     io.Writer
	what  string
	start time.Time
	last  time.Time
	shown bool
}

func newProgress(w io.Writer, what string) *progress {
	return &progress{w: w, what: what, start: time.Now()}
}

func (p *progress) update(done, total int64) {
	now := time.Now()
	if now.Sub(p.start) < time.Second || now.Sub(p.last) < 500*time.Millisecond || total == 0 {
		return
	}
	p.last, p.shown = now, true
	fmt.Fprintf(p.w, "%s: %3.0f%%\n", p.what, 100*float64(done)/float64(total))
}

func (p *progress) done() {
	if p.shown {
		fmt.Fprintf(p.w, "%s: done in %v\n", p.what, time.Since(p.start).Round(time.Millisecond))
	}
}

// human formats a byte count.
func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
