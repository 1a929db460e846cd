package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-runewidth"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// meter shows the progress of one job (a fetch, reading an adapter, a
// decompress) on w, stderr. On a terminal it is one line redrawn in place
// by mpb, fitted to the terminal's width on every redraw: the subject (a
// CID, a path) is shortened in the middle so the line never wraps.
// Elsewhere (a pipe, a file, TERM=dumb) it prints a plain line at most
// every plainEvery, none for a job shorter than plainAfter.
//
// Reports may come in steps (a fetch reports whole 1 MiB leaves): on a
// terminal the line moves on between them at the rate seen so far, at most
// step past the last report, and never backwards.
type meter struct {
	w        io.Writer
	verb     string // "fetch"
	subject  string // "bafkrei...": shortened to fit
	bytes    bool   // the counts are bytes (else only a percentage)
	step     int64  // how far past a report the line may move on
	delay    time.Duration
	now      func() time.Time
	tty      bool
	tick     time.Duration
	mu       sync.Mutex // guards what follows
	start    time.Time
	done     int64 // last report
	total    int64 // 0: not known yet
	at       time.Time
	shown    int64 // on the line: done, or a guess past it
	samples  []sample
	note     string // what happens while nothing moves
	end      string // set when the job ended: "" (done), "failed", "interrupted"
	finished time.Time
	printed  time.Time // last plain line; zero if none
	p        *mpb.Progress
	bar      *mpb.Bar
	stop     chan struct{}
	loop     sync.WaitGroup
}

type sample struct {
	at   time.Time
	done int64
}

const (
	meterDelay = 300 * time.Millisecond // no bar for a job shorter than this
	plainAfter = time.Second
	plainEvery = 2 * time.Second
	rateWindow = 5 * time.Second
	minBar     = 12 // columns kept for the bar itself, brackets included
)

// meterOption configures a meter.
type meterOption func(*meter)

// inBytes says the counts are bytes.
func inBytes() meterOption { return func(m *meter) { m.bytes = true } }

// inSteps says reports come in steps of up to n.
func inSteps(n int64) meterOption { return func(m *meter) { m.step = n } }

// newMeter starts showing the progress of verb on subject on w.
func newMeter(w io.Writer, verb, subject string, opts ...meterOption) *meter {
	m := &meter{w: w, verb: verb, subject: subject, delay: meterDelay, now: time.Now, tty: isTerminal(w), tick: 100 * time.Millisecond}
	for _, o := range opts {
		o(m)
	}
	m.start = m.now()
	m.at = m.start
	m.samples = []sample{{m.start, 0}}
	if m.tty {
		m.stop = make(chan struct{})
		m.loop.Add(1)
		go m.redraw()
	}
	return m
}

// isTerminal reports whether w is a terminal that understands cursor
// movement.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb"
}

// Set reports done of total (0: not known yet).
func (m *meter) Set(done, total int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if m.total <= 0 && total > 0 { // the rate counts from here
		m.samples = m.samples[:0]
	}
	if done != m.done || total != m.total {
		m.samples = append(m.samples, sample{now, done})
		for len(m.samples) > 2 && now.Sub(m.samples[1].at) > rateWindow {
			m.samples = m.samples[1:]
		}
		m.done, m.total, m.at = done, total, now
		m.shown = max(m.shown, done)
	}
	if !m.tty {
		m.plain(now)
	}
}

// Note says what happens while the count does not move ("looking for
// providers"); "" clears it.
func (m *meter) Note(s string) {
	m.mu.Lock()
	m.note = s
	m.mu.Unlock()
}

// Done ends the line with the job complete.
func (m *meter) Done() { m.finish("") }

// Fail ends the line with why the job stopped ("failed", "interrupted"):
// on a terminal the bar stays, saying so; elsewhere the command's error
// says it.
func (m *meter) Fail(why string) { m.finish(why) }

func (m *meter) finish(why string) {
	if m.tty {
		close(m.stop)
		m.loop.Wait()
	}
	m.mu.Lock()
	m.end, m.finished = why, m.now()
	if why == "" {
		m.done = max(m.done, m.total)
		m.total, m.shown = m.done, m.done
	}
	bar, p := m.bar, m.p
	total := m.total
	if !m.tty && !m.printed.IsZero() && why == "" { // a failure is the command's error to say
		fmt.Fprintln(m.w, m.plainLine(m.finished))
	}
	m.mu.Unlock()
	if bar == nil {
		return
	}
	if why == "" {
		bar.SetTotal(total, true)
	} else {
		bar.Abort(false)
	}
	p.Wait()
}

// redraw runs while the job does on a terminal: it starts the bar after
// the delay and moves it on between reports.
func (m *meter) redraw() {
	defer m.loop.Done()
	t := time.NewTicker(m.tick)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		m.mu.Lock()
		now := m.now()
		if m.bar == nil && now.Sub(m.start) >= m.delay {
			m.startBar()
		}
		m.shown = m.guess(now)
		bar, shown, total := m.bar, m.shown, m.total
		m.mu.Unlock()
		if bar != nil {
			bar.SetTotal(total, false)
			bar.SetCurrent(shown)
		}
	}
}

// startBar makes the mpb bar: the label before it, the figures after it,
// both computed on each redraw for the terminal's width then.
func (m *meter) startBar() {
	m.p = mpb.New(mpb.WithOutput(m.w), mpb.WithRefreshRate(120*time.Millisecond), mpb.WithWidth(40))
	var figures string // made by the label, which is drawn first, for the same frame
	label := decor.Any(func(s decor.Statistics) string {
		m.mu.Lock()
		figures = m.figures(m.now())
		m.mu.Unlock()
		// A long note (the daemon's phase) gives way to the shortest label.
		figures = cutEnd(figures, s.AvailableWidth-1-2-minBar-minLabel(m.verb))
		room := s.AvailableWidth - 1 - runewidth.StringWidth(figures) - 2 - minBar
		return fitLabel(m.verb, m.subject, room)
	})
	after := decor.Any(func(decor.Statistics) string { return figures })
	// One column is left free: a line filling the last column makes some
	// terminals wrap.
	spare := mpb.BarFillerMiddleware(func(f mpb.BarFiller) mpb.BarFiller {
		return mpb.BarFillerFunc(func(w io.Writer, s decor.Statistics) error {
			s.AvailableWidth--
			return f.Fill(w, s)
		})
	})
	m.bar = m.p.New(0, mpb.BarStyle().Lbound("[").Filler("=").Tip(">").Padding(" ").Rbound("]"),
		mpb.PrependDecorators(label), mpb.AppendDecorators(after), spare)
}

// guess is what the line shows at now: the last report, moved on at the
// recent rate up to step past it, within the total, never backwards.
func (m *meter) guess(now time.Time) int64 {
	g := m.done
	if r := m.rate(now); m.step > 0 && r > 0 {
		g += min(int64(r*now.Sub(m.at).Seconds()), m.step)
	}
	if m.total > 0 {
		g = min(g, m.total)
	}
	return max(g, m.shown)
}

// rate is the recent speed in units per second: what the reports of the
// last rateWindow add up to, over the time since the first of them; 0 for
// the first second.
func (m *meter) rate(now time.Time) float64 {
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	span := now.Sub(first.at)
	if span < time.Second {
		return 0
	}
	return float64(last.done-first.done) / span.Seconds()
}

// figures are the numbers after the bar: percentage, amounts, rate and ETA
// while it runs; amount and time taken at the end; the note while the total
// is not known. Their fields keep their widths from one redraw to the next.
func (m *meter) figures(now time.Time) string {
	el := now.Sub(m.start)
	if !m.finished.IsZero() {
		el = m.finished.Sub(m.start)
	}
	switch {
	case m.end != "":
		return fmt.Sprintf("%s after %s", m.end, round(el))
	case !m.finished.IsZero():
		s := "done in " + round(el).String()
		if m.bytes {
			s = fmt.Sprintf("%s in %s, %s/s", human(m.total), round(el), human(int64(float64(m.total)/max(el.Seconds(), 1e-3))))
		}
		return "100% " + s
	case m.total <= 0:
		note := m.note
		if note == "" {
			note = "starting"
		}
		return fmt.Sprintf("%s… %s", note, round(el))
	}
	shown := m.shown
	s := fmt.Sprintf("%3.0f%%", 100*float64(shown)/float64(m.total))
	if m.bytes {
		s += fmt.Sprintf(" %15s", amounts(shown, m.total))
	}
	rate, eta := "", "ETA ?"
	if r := m.rate(now); r > 0 {
		rate = human(int64(r)) + "/s"
		eta = "ETA " + (time.Duration(math.Ceil(float64(m.total-shown)/r)) * time.Second).String()
	}
	if m.bytes {
		s += fmt.Sprintf(" %10s", rate)
	}
	if m.note != "" {
		return s + " " + m.note
	}
	return s + " " + eta
}

// amounts is "12.7/30.0 MiB", or "900.0 KiB/1.2 MiB" when the units differ.
func amounts(done, total int64) string {
	d, t := human(done), human(total)
	if n, unit, _ := strings.Cut(d, " "); strings.HasSuffix(t, " "+unit) {
		return n + "/" + t
	}
	return d + "/" + t
}

// plain prints a line where there is no terminal: after plainAfter, then
// every plainEvery.
func (m *meter) plain(now time.Time) {
	if now.Sub(m.start) < plainAfter || !m.printed.IsZero() && now.Sub(m.printed) < plainEvery {
		return
	}
	m.printed = now
	fmt.Fprintln(m.w, m.plainLine(now))
}

// plainLine is the line for now, without the padding that keeps the
// figures in place on a terminal.
func (m *meter) plainLine(now time.Time) string {
	return m.verb + " " + m.subject + ": " + strings.Join(strings.Fields(m.figures(now)), " ")
}

// fitLabel is "verb subject" in at most room columns: the subject
// shortened in the middle (bafkreigh2a…4s52zy) but not below 9 columns.
func fitLabel(verb, subject string, room int) string {
	label := verb + " " + subject
	if runewidth.StringWidth(label) <= room {
		return label
	}
	return verb + " " + shorten(subject, max(room-runewidth.StringWidth(verb)-1, 9))
}

// minLabel is the width of the shortest label fitLabel makes.
func minLabel(verb string) int { return runewidth.StringWidth(verb) + 1 + 9 }

// cutEnd cuts s to n columns, ending it with "…" if it was longer.
func cutEnd(s string, n int) string {
	if runewidth.StringWidth(s) <= n {
		return s
	}
	return runewidth.Truncate(s, max(n, 1), "…")
}

// shorten cuts s to n columns by putting "…" in its middle, keeping more
// of its start.
func shorten(s string, n int) string {
	if runewidth.StringWidth(s) <= n {
		return s
	}
	r := []rune(s)
	tail := (n - 1) / 2
	head := n - 1 - tail
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

// round rounds a duration for people: tenths of seconds under a minute.
func round(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// human formats a byte count.
func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
