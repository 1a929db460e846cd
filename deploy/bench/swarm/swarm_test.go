package swarm

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/x/simlibp2p"
	"github.com/marcopolo/simnet"
	"github.com/spf13/viper"

	"github.com/expertd/expertd/compress/synth"
	"github.com/expertd/expertd/node"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/config"
)

var (
	out   = flag.String("out", "", "run the simulation and write swarm.md into this directory")
	nodes = flag.Int("nodes", 50, "nodes in the swarm")
	debug = flag.Bool("debug", false, "log the nodes' messages")
	set   = flag.String("set", "", "extra configuration for every node: key=value,key=value")
	trace = flag.Bool("trace", false, "log every second: nodes holding the expert, publisher's bytes sent")
)

// The link: every node has its own 20 Mbit/s uplink and downlink
// and every pair of nodes is 100 ms apart.
const (
	rtt       = 100 * time.Millisecond
	bandwidth = 20 * simlibp2p.OneMbps
	// params of the synthetic LoRA whose container, at density 2/3
	// (1.6 bits a parameter), is 10 MiB.
	params  = 52_428_800
	density = 0.6667
)

func link() simnet.NodeBiDiLinkSettings {
	return simnet.NodeBiDiLinkSettings{
		Uplink:   simnet.LinkSettings{BitsPerSecond: bandwidth},
		Downlink: simnet.LinkSettings{BitsPerSecond: bandwidth},
	}
}

// floor is moving size bytes over one link plus two round trips.
func floor(size uint64) time.Duration {
	return time.Duration(float64(size)*8/float64(bandwidth)*float64(time.Second)) + 2*rtt
}

// simNode is a real node on the simulated network.
type simNode struct {
	*node.Node
	sent *atomic.Int64 // bytes onto its uplink
}

// startNodes starts count nodes on nw; node i bootstraps to node 0 and to
// up to two others started before it. They stop when the test ends.
func startNodes(t *testing.T, nw *simnet.Simnet, count int) []*simNode {
	t.Helper()
	var ns []*simNode
	for i := range count {
		var boot []string
		for _, j := range []int{0, i - 1, i / 2} {
			if j >= 0 && j < i && !slices.Contains(boot, ns[j].Identity().Addrs[0]) {
				boot = append(boot, ns[j].Identity().Addrs[0])
			}
		}
		v := viper.New()
		v.Set("data_dir", t.TempDir())
		v.Set("api.listen", "127.0.0.1:1") // unused: WithoutAPI
		v.Set("p2p.listen", []string{fmt.Sprintf("/ip4/%s/udp/8000/quic-v1", simnet.IntToPublicIPv4(i))})
		v.Set("p2p.mdns", false)
		v.Set("p2p.nat_port_map", false)
		v.Set("p2p.hole_punching", false)
		v.Set("p2p.autonat", false)
		v.Set("p2p.dht.mode", "server")
		v.Set("p2p.bootstrap", boot)
		for _, kv := range strings.Split(*set, ",") {
			if k, val, ok := strings.Cut(kv, "="); ok {
				v.Set(k, val)
			}
		}
		cfg, err := config.Load(v, "")
		if err != nil {
			t.Fatal(err)
		}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		if *debug {
			log = slog.New(slog.NewTextHandler(testWriter{t, i}, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		sent := new(atomic.Int64)
		n, err := node.New(context.Background(), cfg, log, node.WithoutAPI(), node.WithHostOptions(
			quicSimnet(nw, link(), sent),
			// As x/simlibp2p: identify's address discovery stalls synctest.
			libp2p.DisableIdentifyAddressDiscovery(),
		))
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Serve(ctx) }()
		t.Cleanup(func() {
			cancel()
			<-done
			n.Close()
		})
		ns = append(ns, &simNode{Node: n, sent: sent})
	}
	return ns
}

type testWriter struct {
	t *testing.T
	i int
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("node %d: %s", w.i, p)
	return len(p), nil
}

// newNetwork starts a simulated network closed when the test ends (after
// the nodes, as cleanups run last first).
func newNetwork(t *testing.T) *simnet.Simnet {
	nw := &simnet.Simnet{LatencyFunc: simnet.StaticLatency(rtt / 2)}
	nw.Start()
	t.Cleanup(nw.Close)
	return nw
}

// adapterDir writes a synthetic LoRA of n parameters (params: one that
// compresses to about 10 MiB).
func adapterDir(t *testing.T, n int) string {
	dir := filepath.Join(t.TempDir(), "lora")
	if err := synth.WriteLoRA(dir, n, 7); err != nil {
		t.Fatal(err)
	}
	return dir
}

// swarmResult is what one swarm run measured.
type swarmResult struct {
	Nodes     int
	Size      uint64          // container bytes
	Reach     []time.Duration // per other node: publish to knowing the expert
	Done      []time.Duration // per other node: publish to holding it
	Sent      int64           // publisher's bytes sent, publish to the last holder
	Failures  int             // fetches that failed and were started again
	TotalSent int64           // all nodes' bytes sent meanwhile
}

// runSwarm publishes the adapter at node 0; every other node fetches the
// expert as soon as it hears of it (as a prefetch rule would make it).
func runSwarm(t *testing.T, adapter string, count int) swarmResult {
	nw := newNetwork(t)
	ns := startNodes(t, nw, count)
	time.Sleep(10 * time.Second) // bootstrap, DHT and the gossip mesh
	pub := ns[0]
	sent0 := make([]int64, count)
	for i, n := range ns {
		sent0[i] = n.sent.Load()
	}
	start := time.Now()
	e, err := pub.Publish(context.Background(), api.PublishRequest{Path: adapter, Name: "swarm", Density: density})
	if err != nil {
		t.Fatal(err)
	}
	res := swarmResult{Nodes: count, Size: uint64(e.Size)}
	reach := make([]time.Duration, count)
	done := make([]time.Duration, count)
	left := count - 1
	lastTrace := start
	for left > 0 {
		if *trace && time.Since(lastTrace) >= time.Second {
			lastTrace = time.Now()
			var bytes []string
			for i, n := range ns[1:] {
				if done[i+1] == 0 {
					if tr, err := n.Transfer(e.CID); err == nil {
						bytes = append(bytes, fmt.Sprintf("%d:%d", i+1, tr.Bytes>>20))
					}
				}
			}
			t.Logf("%5.1fs publisher %5.1f MiB, %d holders; fetching (node:MiB) %v", time.Since(start).Seconds(), float64(pub.sent.Load()-sent0[0])/(1<<20), count-1-left, bytes)
		}
		if time.Since(start) > 10*time.Minute {
			t.Fatalf("after 10 minutes %d of %d nodes lack the expert", left, count-1)
		}
		time.Sleep(10 * time.Millisecond)
		for i, n := range ns[1:] {
			i++
			if done[i] > 0 {
				continue
			}
			if reach[i] == 0 {
				if x, err := n.Expert(e.CID); err == nil && len(x.Providers) > 0 {
					reach[i] = time.Since(start)
					if _, err := n.StartFetch(e.CID); err != nil {
						t.Fatal(err)
					}
				}
				continue
			}
			tr, err := n.Transfer(e.CID)
			switch {
			case err != nil:
				t.Fatal(err)
			case tr.State == api.StateDone:
				done[i] = time.Since(start)
				left--
			case tr.State == api.StateFailed:
				res.Failures++
				t.Logf("node %d: fetch failed (%s); starting it again", i, tr.Error)
				if _, err := n.StartFetch(e.CID); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	res.Sent = pub.sent.Load() - sent0[0]
	for i, n := range ns {
		res.TotalSent += n.sent.Load() - sent0[i]
	}
	res.Reach, res.Done = reach[1:], done[1:]
	return res
}

// runPair publishes the adapter at one node and times a second node's
// fetch of it, from StartFetch to holding it, as the daemon runs it
// (providers from gossip, verified, stored and indexed).
func runPair(t *testing.T, adapter string) time.Duration {
	nw := newNetwork(t)
	ns := startNodes(t, nw, 2)
	time.Sleep(10 * time.Second)
	e, err := ns[0].Publish(context.Background(), api.PublishRequest{Path: adapter, Name: "pair", Density: density})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if x, err := ns[1].Expert(e.CID); err == nil && len(x.Providers) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second) // the announcement's traffic settles
	start := time.Now()
	if _, err := ns[1].StartFetch(e.CID); err != nil {
		t.Fatal(err)
	}
	for {
		time.Sleep(time.Millisecond)
		tr, err := ns[1].Transfer(e.CID)
		if err != nil {
			t.Fatal(err)
		}
		switch tr.State {
		case api.StateDone:
			return time.Since(start)
		case api.StateFailed:
			t.Fatalf("pair fetch failed: %s", tr.Error)
		}
	}
}

// TestSwarm runs, each on a new simulated network: the swarm of -nodes
// nodes fetching a new 10 MiB expert at once, the same number of plain
// HTTP clients downloading as many bytes from one server, and one pair of
// each. It writes swarm.md into -out.
func TestSwarm(t *testing.T) {
	if *out == "" {
		t.Skip("simulates a swarm for minutes of CPU: run with -out DIR (scripts/bench.sh)")
	}
	adapter := adapterDir(t, params)
	var sw swarmResult
	var hsw, hpair httpResult
	var pair time.Duration
	began := time.Now()
	synctest.Test(t, func(t *testing.T) { sw = runSwarm(t, adapter, *nodes) })
	synctest.Test(t, func(t *testing.T) { hsw = runHTTP(t, int(sw.Size), *nodes-1) })
	synctest.Test(t, func(t *testing.T) { pair = runPair(t, adapter) })
	synctest.Test(t, func(t *testing.T) { hpair = runHTTP(t, int(sw.Size), 1) })
	r := report{Swarm: sw, HTTP: hsw, Pair: pair, HTTPPair: hpair.Done[0], Took: time.Since(began)}
	md := r.markdown()
	t.Log("\n" + md)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*out, "swarm.md"), []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSmallSwarm is TestSwarm's swarm with 10 nodes and a 4 MiB expert,
// small enough for every test run: every node gets the expert, no fetch
// fails, and the publisher sends less than 6 times the expert where a
// plain server would send it 9 times (measured: 3.4-4.2).
func TestSmallSwarm(t *testing.T) {
	if testing.Short() {
		t.Skip("10 nodes on a simulated network")
	}
	adapter := adapterDir(t, params*2/5)
	synctest.Test(t, func(t *testing.T) {
		r := runSwarm(t, adapter, 10)
		_, last := quantiles(r.Done)
		x := float64(r.Sent) / float64(r.Size)
		t.Logf("%d bytes to 9 nodes in %v; publisher sent %.2f x, all nodes %.2f x", r.Size, last, x, float64(r.TotalSent)/float64(r.Size))
		if r.Failures > 0 || x >= 6 {
			t.Fatalf("%d failed fetches, publisher sent %.2f x the expert (want none, < 6 x)", r.Failures, x)
		}
	})
}
