package sweep

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/x/simlibp2p"
)

var (
	outDir = flag.String("out", "", "TestSweep writes sweep.md and fetch-vs-rtt.svg here; it is skipped without")
	reps   = flag.Int("reps", 3, "timed transfers per method, RTT and connection state; the median is reported")
)

const (
	expertSize = 10 << 20
	bandwidth  = 20 * simlibp2p.OneMbps
)

var rtts = []time.Duration{25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}

// times are the median times of one method on fresh and on warm connections.
type times struct{ Fresh, Warm time.Duration }

// point is the sweep's result at one RTT.
type point struct {
	Link        link
	Floor       time.Duration
	Fetch, HTTP times
}

// TestSweep times a verified 10 MiB expert over one simulated pair of
// nodes at 20 Mbit/s for each RTT, expertd's fetch next to HTTP/1.1, and
// writes the report. Each RTT runs in its own synctest bubble: the links
// are exact and the figures do not depend on this machine's load.
func TestSweep(t *testing.T) {
	if *outDir == "" {
		t.Skip("needs -args -out DIR")
	}
	if *reps < 1 {
		t.Fatalf("-reps %d: need at least 1", *reps)
	}
	start := time.Now()
	var points []point
	for _, rtt := range rtts {
		t.Run(fmt.Sprint("rtt=", rtt), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				points = append(points, measurePoint(t, link{RTT: rtt, BitsPerSecond: bandwidth}))
			})
		})
	}
	if t.Failed() {
		return
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeReport(*outDir, points, *reps); err != nil {
		t.Fatal(err)
	}
	t.Logf("sweep of %d points took %v of real time; wrote %s", len(points), time.Since(start).Round(time.Millisecond), *outDir)
}

// measurePoint times both methods over a new network with link l.
func measurePoint(t *testing.T, l link) point {
	s := newScene(t, l, expertSize)
	p := point{Link: l, Floor: l.floor(expertSize)}
	p.Fetch = s.times(t, "expertd", viaFetch, *reps)
	p.HTTP = s.times(t, "http", viaHTTP, *reps)
	t.Logf("floor %.3fs  expertd fresh %.3fs warm %.3fs  http fresh %.3fs warm %.3fs",
		p.Floor.Seconds(), p.Fetch.Fresh.Seconds(), p.Fetch.Warm.Seconds(), p.HTTP.Fresh.Seconds(), p.HTTP.Warm.Seconds())
	return p
}

// times runs m n times on fresh connections and n times warm, and
// returns both medians. A warm run is the second transfer on a new
// connection, after an untimed one of the same method: successive
// transfers on one connection are not alike (at high RTT each takes
// longer than the one before, whatever the method), so every warm run
// starts from the same state.
func (s *scene) times(t *testing.T, name string, m method, n int) times {
	run := func(fresh bool) time.Duration {
		var ds []time.Duration
		for range n {
			if !fresh {
				s.measure(t, name, m, true) // new connection, warmed
			}
			ds = append(ds, s.measure(t, name, m, fresh))
		}
		slices.Sort(ds)
		t.Logf("%-7s fresh=%-5v %v", name, fresh, ds)
		return ds[len(ds)/2]
	}
	return times{Fresh: run(true), Warm: run(false)}
}
