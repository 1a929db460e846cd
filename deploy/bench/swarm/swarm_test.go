package swarm

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

var (
	out   = flag.String("out", "", "run the simulations and write swarm.md (and its plots) into this directory")
	only  = flag.String("scenarios", "all", "scenarios to run, comma-separated: 50, 200, hetero, churn, lan, or all")
	nodes = flag.Int("nodes", 0, "nodes in every swarm scenario but the LAN one (0: the scenario's own)")
	debug = flag.Bool("debug", false, "log the nodes' messages")
	set   = flag.String("set", "", "extra configuration for every node: key=value,key=value")
	trace = flag.Bool("trace", false, "log every second (with -v): uplinks used, holders, holders per leaf, bytes each fetcher holds")
	http  = flag.Bool("http", true, "next to the first swarm, run plain HTTP and the pairs")
)

// selected lists the scenarios -scenarios names, with -nodes applied.
func selected(t *testing.T) []scenario {
	var out []scenario
	for _, sc := range scenarios() {
		if *only == "all" || slices.Contains(strings.Split(*only, ","), sc.Name) {
			if *nodes > 0 && !sc.Real {
				sc.Nodes = *nodes
			}
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		t.Fatalf("-scenarios %q names none of 50, 200, hetero, churn, lan", *only)
	}
	return out
}

// TestSwarm runs issue 18's swarms (-scenarios), each on a new simulated
// network: node 0 publishes a new expert and every other node fetches it
// at once. Next to the first swarm it runs as many plain HTTP clients
// downloading as many bytes from one server, and one pair of each. It
// writes swarm.md and its plots into -out.
func TestSwarm(t *testing.T) {
	if *out == "" {
		t.Skip("simulates swarms for minutes of CPU: run with -out DIR (scripts/bench.sh)")
	}
	r := report{}
	adapters := map[int]string{}
	for i, sc := range selected(t) {
		if adapters[sc.Params] == "" {
			adapters[sc.Params] = adapterDir(t, sc.Params)
		}
		adapter := adapters[sc.Params]
		t.Run(sc.Name, func(t *testing.T) {
			var res swarmResult
			began := time.Now()
			if sc.Real {
				res = runSwarm(t, adapter, sc)
				r.Profile = res.Profile
			} else {
				synctest.Test(t, func(t *testing.T) { res = runSwarm(t, adapter, sc) })
			}
			res.Took = time.Since(began)
			r.Swarms = append(r.Swarms, res)
			t.Log("\n" + res.markdown())
			if i > 0 || sc.Real || !*http {
				return
			}
			// The first swarm's comparison: plain HTTP, and one pair.
			r.First = res
			synctest.Test(t, func(t *testing.T) { r.HTTP = runHTTP(t, sc, int(res.Size), sc.Nodes-1) })
			synctest.Test(t, func(t *testing.T) { r.Pair = runPair(t, adapter, sc) })
			synctest.Test(t, func(t *testing.T) { r.HTTPPair = runHTTP(t, sc, int(res.Size), 1).Done[0] })
		})
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.write(*out); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(*out, "swarm.md"))
	t.Log("\n" + string(md))
}

// profile starts the CPU profiler; stop stops it and summarizes where the
// CPU went: go tool pprof's top functions, ours and the libraries'.
func profile(t *testing.T) (stop func() string) {
	var prof bytes.Buffer
	if err := pprof.StartCPUProfile(&prof); err != nil {
		t.Fatal(err)
	}
	return func() string {
		pprof.StopCPUProfile()
		file := filepath.Join(t.TempDir(), "cpu.pprof")
		if err := os.WriteFile(file, prof.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		bin, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		top, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=25", bin, file).CombinedOutput()
		if err != nil {
			t.Logf("go tool pprof: %v\n%s", err, top)
		}
		return string(top)
	}
}

// TestSmallSwarm is TestSwarm's swarm with 10 nodes and a 4 MiB expert,
// small enough for every test run: every node gets the expert, no fetch
// fails, and the publisher sends less than 6 times the expert where a
// plain server would send it 9 times.
func TestSmallSwarm(t *testing.T) {
	if testing.Short() {
		t.Skip("10 nodes on a simulated network")
	}
	adapter := adapterDir(t, params*2/5)
	synctest.Test(t, func(t *testing.T) {
		sc := base("small", "10 nodes", 10)
		r := runSwarm(t, adapter, sc)
		_, last := quantiles(r.Done)
		x := float64(r.Sent) / float64(r.Size)
		t.Logf("%d bytes to 9 nodes in %v; publisher sent %.2f x, all nodes %.2f x", r.Size, last, x, float64(r.TotalSent)/float64(r.Size))
		if r.Failures > 0 || x >= 6 {
			t.Fatalf("%d failed fetches, publisher sent %.2f x the expert (want none, < 6 x)", r.Failures, x)
		}
	})
}
