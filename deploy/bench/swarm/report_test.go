package swarm

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/expertd/expertd/deploy/bench/plot"
)

// report is TestSwarm's figures: every swarm run, and next to the first
// plain HTTP and one pair of each.
type report struct {
	Swarms         []swarmResult
	First          swarmResult
	HTTP           httpResult
	Pair, HTTPPair time.Duration
	Profile        string // the LAN run's CPU profile, pprof -top
}

func quantiles(ds []time.Duration) (median, last time.Duration) {
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2], s[len(s)-1]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// group is the fetchers a row of the table is about.
type group struct {
	name string
	keep func(i int) bool // fetcher i (1-based node number) belongs
}

// done lists the completion times of the fetchers of g that were not
// killed, and the largest floor among them.
func (r swarmResult) done(keep func(int) bool) (ds []time.Duration, floor time.Duration, ratio float64) {
	for i, d := range r.Done {
		if r.Killed[i] || !keep(i+1) {
			continue
		}
		ds = append(ds, d)
		floor = max(floor, r.Floor[i])
		ratio = max(ratio, d.Seconds()/r.Floor[i].Seconds())
	}
	return ds, floor, ratio
}

// markdown is the table of one swarm run.
func (r swarmResult) markdown() string {
	sc, size := r.Scenario, float64(r.Size)
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("### %s", sc.Title)
	p("")
	clock := "virtual clock"
	if sc.Real {
		clock = "real clock (CPU time counts; times from the announcement, the end of Publish)"
	}
	p("%d nodes, %.1f MiB expert, %d Mbit/s links, %v RTT, %s. Real time of the run: %v.",
		sc.Nodes, size/(1<<20), sc.Bandwidth/1_000_000, sc.RTT, clock, r.Took.Round(time.Second))
	p("")
	p("| fetchers | floor | median | last | worst node: its time / its floor |")
	p("|---|---|---|---|---|")
	groups := []group{{"all", func(int) bool { return true }}}
	if sc.Slow > 0 || sc.Far > 0 {
		groups = append(groups,
			group{"fast, near", func(i int) bool { return !sc.slow(i) && !sc.far(i) }},
			group{"fast, far", func(i int) bool { return !sc.slow(i) && sc.far(i) }},
			group{fmt.Sprintf("slow (%d Mbit/s)", sc.SlowBandwidth/1_000_000), sc.slow})
	}
	for _, g := range groups {
		ds, floor, ratio := r.done(g.keep)
		if len(ds) == 0 {
			continue
		}
		med, last := quantiles(ds)
		p("| %s (%d) | %s | %s (%.2f x) | %s (%.2f x) | %.2f x |",
			g.name, len(ds), secs(floor), secs(med), med.Seconds()/floor.Seconds(), secs(last), last.Seconds()/floor.Seconds(), ratio)
	}
	killed := 0
	for _, k := range r.Killed {
		if k {
			killed++
		}
	}
	p("")
	p("Publisher's bytes sent: %.2f x the expert; all nodes' bytes sent: %.2f x (%d copies needed). Uplinks used "+
		"(share of the live nodes' capacity, second by second from publish): %s.",
		float64(r.Sent)/size, float64(r.TotalSent)/size, len(r.Done)-killed, percents(r.Busy))
	if killed > 0 {
		p("Killed mid-fetch (cut off, not closed, once holding %.0f%% of the expert): %d fetchers.", 100*sc.KillAt, killed)
	}
	if sc.Real {
		_, last := quantiles(r.Done)
		p("Throughput: %.1f MB/s per node (the expert over the last node's time).", size/1e6/last.Seconds())
	}
	if r.Failures > 0 {
		p("Fetches that failed and were started again: %d.", r.Failures)
	}
	return b.String()
}

func percents(fs []float64) string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%.0f", 100*f))
	}
	return strings.Join(out, " ") + " %"
}

// write writes swarm.md and its plots into dir.
func (r report) write(dir string) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	host, _ := os.Hostname()
	p("## Swarm")
	p("")
	p("Real expertd nodes (node.New, default configuration) on go-libp2p's simnet (QUIC): node 0 publishes a "+
		"synthetic LoRA at density 2/3 and every other node starts fetching it when the announcement reaches it. "+
		"Unless said otherwise every node has its own uplink and downlink of the given rate, any two are the given "+
		"RTT apart, and synctest's virtual clock runs, so CPU time does not count. A fetcher's floor is its fetch "+
		"alone from the publisher: size over the slower link plus two round trips. "+
		"Measured %s on %s (%d CPUs) by `go test ./deploy/bench/swarm -run '^TestSwarm$' -timeout 60m -args -out DIR` "+
		"(scripts/bench.sh; `-scenarios 50,churn` runs some).",
		time.Now().UTC().Format("2006-01-02"), host, runtime.NumCPU())
	p("")
	for _, s := range r.Swarms {
		b.WriteString(s.markdown())
		p("")
	}
	if r.First.Size > 0 {
		f := r.First
		size := float64(f.Size)
		fl := f.Scenario.floor(1, f.Size)
		_, last := quantiles(f.Done)
		httpMed, httpMax := quantiles(r.HTTP.Done)
		p("### Next to plain HTTP (%s)", f.Scenario.Title)
		p("")
		p("The same number of net/http clients download as many bytes at once from one net/http server " +
			"(HTTP/1.1 over a libp2p stream, same links); and one node fetching alone, on a connection that has " +
			"carried only gossip (QUIC's initial congestion window), from the fetch request to the expert stored " +
			"and indexed.")
		p("")
		p("| measure | expertd | plain HTTP |")
		p("|---|---|---|")
		p("| all %d fetchers hold it (last) | %s | %s (median %s) |", len(f.Done), secs(last), secs(httpMax), secs(httpMed))
		p("| server's bytes sent (x the expert) | %.2f x | %.2f x |", float64(f.Sent)/size, float64(r.HTTP.Sent)/size)
		p("| one node fetching alone (x floor %s) | %s (%.2f x) | %s (%.2f x) |", secs(fl),
			secs(r.Pair), r.Pair.Seconds()/fl.Seconds(), secs(r.HTTPPair), r.HTTPPair.Seconds()/fl.Seconds())
		p("| one pair, expertd / HTTP | %.2f x | |", r.Pair.Seconds()/r.HTTPPair.Seconds())
		p("")
		p("![nodes holding the expert over time, expertd and plain HTTP](swarm-http.svg)")
		p("")
		if err := writeSVG(filepath.Join(dir, "swarm-http.svg"), r.httpChart()); err != nil {
			return err
		}
	}
	if len(r.Swarms) > 0 {
		p("![share of the fetchers holding the expert over time, in floors](swarm-scenarios.svg)")
		p("")
		if err := writeSVG(filepath.Join(dir, "swarm-scenarios.svg"), r.scenarioChart()); err != nil {
			return err
		}
	}
	if r.Profile != "" {
		p("### Where the CPU goes (LAN run, announcement to the last holder, all nodes in one process; go tool pprof -top)")
		p("")
		p("```")
		b.WriteString(strings.TrimSpace(trimProfile(r.Profile)) + "\n")
		p("```")
	}
	return os.WriteFile(filepath.Join(dir, "swarm.md"), []byte(b.String()), 0o644)
}

// trimProfile drops pprof's file header lines.
func trimProfile(top string) string {
	var keep []string
	for _, l := range strings.Split(top, "\n") {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Type:") || strings.HasPrefix(l, "Time:") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

// steps is a completion curve: at each time in ds, one more done.
func steps(ds []time.Duration, scale float64) (x, y []float64) {
	s := slices.Sorted(slices.Values(ds))
	x, y = []float64{0}, []float64{0}
	for i, d := range s {
		x = append(x, d.Seconds()/scale)
		y = append(y, float64(i+1))
	}
	return x, y
}

func (r report) httpChart() *plot.Chart {
	f := r.First
	var live []time.Duration
	for i, d := range f.Done {
		if !f.Killed[i] {
			live = append(live, d)
		}
	}
	ex, ey := steps(live, 1)
	hx, hy := steps(r.HTTP.Done, 1)
	fl := f.Scenario.floor(1, f.Size).Seconds()
	return &plot.Chart{
		Title:  fmt.Sprintf("%s: fetchers holding the expert", f.Scenario.Title),
		XLabel: "seconds since publish", YLabel: "fetchers",
		Series: []plot.Series{
			{Name: "expertd", X: ex, Y: ey},
			{Name: "plain HTTP", X: hx, Y: hy},
			{Name: "floor", X: []float64{fl, fl}, Y: []float64{0, float64(len(live))}, Dashed: true},
		},
	}
}

func (r report) scenarioChart() *plot.Chart {
	c := &plot.Chart{Title: "fetchers holding the expert", XLabel: "time since publish / the fetcher's floor", YLabel: "% of the fetchers"}
	for _, s := range r.Swarms {
		var rel []time.Duration
		for i, d := range s.Done {
			if !s.Killed[i] {
				rel = append(rel, time.Duration(float64(time.Second)*d.Seconds()/s.Floor[i].Seconds()))
			}
		}
		x, y := steps(rel, 1)
		for i := range y {
			y[i] *= 100 / float64(len(rel))
		}
		c.Series = append(c.Series, plot.Series{Name: s.Scenario.Name, X: x, Y: y})
	}
	return c
}

func writeSVG(file string, c *plot.Chart) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := c.WriteSVG(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
