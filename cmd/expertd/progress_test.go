package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/mattn/go-runewidth"

	"github.com/expertd/expertd/internal/testutil"
)

const longCID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"

// clock is a fake time for a meter.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// plainMeter is a meter on a buffer (not a terminal) with a fake clock.
func plainMeter(opts ...meterOption) (*meter, *bytes.Buffer, *clock) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(1e9, 0)}
	m := newMeter(&buf, "fetch", longCID, append([]meterOption{func(m *meter) { m.now = c.now }}, opts...)...)
	m.start, m.at, m.samples = c.t, c.t, []sample{{c.t, 0}}
	return m, &buf, c
}

// TestMeterPlain: without a terminal, a job prints plain lines, the first
// after a second, then at most one every two seconds, and a last one; a
// short job prints nothing.
func TestMeterPlain(t *testing.T) {
	m, buf, c := plainMeter(inBytes())
	for i := range 50 { // 10 s, 2 MiB/s, a report every 200 ms
		c.advance(200 * time.Millisecond)
		m.Set(int64(i+1)<<20*2/5, 20<<20)
	}
	m.Done()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 6 { // at 1, 3, 5, 7, 9 s and the end
		t.Fatalf("%d lines:\n%s", len(lines), buf)
	}
	if strings.ContainsAny(buf.String(), "\r\x1b") {
		t.Fatalf("control characters in plain output: %q", buf)
	}
	if want := "fetch " + longCID + ": 10% 2.0/20.0 MiB ETA ?"; lines[0] != want { // no rate in the first second
		t.Errorf("first line %q, want %q", lines[0], want)
	}
	if !strings.Contains(lines[1], "2.0 MiB/s") || !strings.Contains(lines[1], "ETA 7s") {
		t.Errorf("second line %q: no rate or ETA", lines[1])
	}
	if want := "100% 20.0 MiB in 10s, 2.0 MiB/s"; !strings.HasSuffix(lines[5], want) {
		t.Errorf("last line %q, want ...%q", lines[5], want)
	}

	m, buf, c = plainMeter()
	c.advance(900 * time.Millisecond)
	m.Set(5, 10)
	m.Done()
	if buf.Len() != 0 {
		t.Errorf("a job under a second printed %q", buf)
	}

	m, buf, c = plainMeter(inBytes())
	for range 8 {
		c.advance(500 * time.Millisecond)
		m.Note("looking for providers")
		m.Set(0, 0)
	}
	m.Fail("interrupted")
	if got := buf.String(); got != "fetch "+longCID+": looking for providers… 1s\nfetch "+longCID+": looking for providers… 3s\n" {
		t.Errorf("a fetch that never started, interrupted (the command's error says so):\n%s", got)
	}
}

// TestMeterGuess: between reports in 1 MiB steps the line moves on at the
// rate seen, at most a step past the last report, within the total, and
// never backwards.
func TestMeterGuess(t *testing.T) {
	m, _, c := plainMeter(inBytes(), inSteps(1<<20))
	if g := m.guess(c.now()); g != 0 {
		t.Fatalf("guess %d before any report", g)
	}
	for i := range 4 { // 1 MiB every 500 ms: 2 MiB/s
		c.advance(500 * time.Millisecond)
		m.Set(int64(i+1)<<20, 5<<20+100)
	}
	c.advance(250 * time.Millisecond)
	// The rate counts from the first report (the total came with it): 3 MiB in 1.75 s.
	r := float64(3<<20) / 1.75
	if g, want := m.guess(c.now()), 4<<20+int64(r*0.25); g != want {
		t.Errorf("250 ms after a report: %d, want %d", g, want)
	}
	m.shown = m.guess(c.now())
	c.advance(5 * time.Second)
	if g := m.guess(c.now()); g != 5<<20 {
		t.Errorf("long after a report: %d, want the report and one step (5 MiB)", g)
	}
	m.step = 2 << 20
	if g := m.guess(c.now()); g != 5<<20+100 {
		t.Errorf("past the total: %d", g)
	}
	m.step = 0
	if g := m.guess(c.now()); g != m.shown {
		t.Errorf("went backwards: %d after %d", g, m.shown)
	}
}

func TestFitLabel(t *testing.T) {
	for _, room := range []int{10, 20, 40, 65, 80} {
		got := fitLabel("fetch", longCID, room)
		w := runewidth.StringWidth(got)
		if w > max(room, 15) || !strings.HasPrefix(got, "fetch bafk") || !strings.HasSuffix(got, "s52zy") && room > 20 {
			t.Errorf("room %d: %q (%d columns)", room, got, w)
		}
	}
	if got := fitLabel("fetch", longCID, 80); got != "fetch "+longCID {
		t.Errorf("shortened with room to spare: %q", got)
	}
}

// csi matches the terminal control sequences mpb writes.
var csi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// TestMeterTerminal draws a fetch on a pseudo-terminal 60, 80 and 120 columns
// wide: the output is a bar, and no line it draws reaches the last column
// (so none wraps into a new line).
func TestMeterTerminal(t *testing.T) {
	for _, cols := range []uint16{60, 80, 120} {
		t.Run(fmt.Sprint(cols), func(t *testing.T) {
			ptmx, tty, err := pty.Open()
			if err != nil {
				testutil.Missing(t, "no pseudo-terminal: %v", err)
			}
			defer ptmx.Close()
			if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: cols}); err != nil {
				t.Fatal(err)
			}
			out := make(chan []byte)
			go func() {
				b, _ := io.ReadAll(ptmx)
				out <- b
			}()
			demoFetch(tty, 30)
			tty.Close()
			raw := <-out
			if !bytes.Contains(raw, []byte("\x1b[")) || !bytes.Contains(raw, []byte("] 100% ")) {
				t.Fatalf("no bar redrawn in place:\n%q", raw)
			}
			for _, line := range strings.Split(csi.ReplaceAllString(string(raw), ""), "\n") {
				line = strings.TrimRight(line, "\r")
				if w := runewidth.StringWidth(line); w >= int(cols) {
					t.Errorf("a %d-column line on a %d-column terminal: %q", w, cols, line)
				}
			}
		})
	}
}

// demoFetch draws a fetch of 8 MiB in 1 MiB leaves on w, then an
// interrupted one.
func demoFetch(w io.Writer, leaves int) {
	fast := func(m *meter) { m.delay, m.tick = 0, 20*time.Millisecond }
	m := newMeter(w, "fetch", longCID, inBytes(), inSteps(1<<20), fast)
	m.Note("looking for providers: gossip, DHT (attempt 2 of 5)") // a daemon's longest phase
	m.Set(0, 0)
	time.Sleep(200 * time.Millisecond)
	m.Note("")
	for i := range leaves {
		m.Set(int64(i)<<20, int64(leaves)<<20)
		time.Sleep(40 * time.Millisecond) // a leaf arrives
	}
	m.Set(int64(leaves)<<20, int64(leaves)<<20)
	m.Done()
	m = newMeter(w, "fetch", longCID, inBytes(), inSteps(1<<20), fast)
	m.Set(1<<20, 9<<20)
	time.Sleep(200 * time.Millisecond)
	m.Fail("interrupted")
}

// TestMeterScreen runs demoFetch in tmux, a real terminal, 80 and 120
// columns wide, and counts the lines left on its screen: one per fetch.
func TestMeterScreen(t *testing.T) {
	if os.Getenv("EXPERTD_METER_DEMO") != "" {
		demoFetch(os.Stderr, 30)
		fmt.Fprintln(os.Stderr, "END")
		os.Exit(0)
	}
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		testutil.Missing(t, "tmux is not on PATH: install Debian's tmux to test the progress bar on a terminal")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, cols := range []int{80, 120} {
		t.Run(fmt.Sprint(cols), func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "tmux")
			run := func(args ...string) string {
				out, err := exec.Command(tmux, append([]string{"-S", sock}, args...)...).CombinedOutput()
				if err != nil {
					t.Fatalf("tmux %v: %v\n%s", args, err, out)
				}
				return string(out)
			}
			run("-f", "/dev/null", "new-session", "-d", "-x", fmt.Sprint(cols), "-y", "30",
				fmt.Sprintf("EXPERTD_METER_DEMO=1 %q -test.run='^TestMeterScreen$'; sleep 60", self))
			t.Cleanup(func() { exec.Command(tmux, "-S", sock, "kill-server").Run() })
			screen := ""
			for deadline := time.Now().Add(30 * time.Second); !strings.Contains(screen, "END"); time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the demo did not end; screen:\n%s", screen)
				}
				screen = run("capture-pane", "-p")
			}
			var lines []string
			for _, l := range strings.Split(screen, "\n") {
				if strings.TrimSpace(l) != "" {
					lines = append(lines, l)
				}
			}
			if len(lines) != 3 || !strings.Contains(lines[0], "] 100% 30.0 MiB in ") ||
				!strings.Contains(lines[1], "interrupted after") || lines[2] != "END" {
				t.Fatalf("%d lines on a %d-column screen, want the done fetch, the interrupted one and END:\n%s", len(lines), cols, strings.Join(lines, "\n"))
			}
			if !strings.Contains(lines[0], "fetch bafkrei") || !strings.Contains(lines[0], "…") && cols == 80 {
				t.Errorf("the CID is not shown, or not shortened at %d columns: %q", cols, lines[0])
			}
			t.Logf("%d columns:\n%s", cols, strings.Join(lines, "\n"))
		})
	}
}
