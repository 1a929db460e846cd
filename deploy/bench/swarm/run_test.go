package swarm

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/node/api"
)

// swarmResult is what one swarm run measured.
type swarmResult struct {
	Scenario  scenario
	Size      uint64          // container bytes
	Reach     []time.Duration // per fetcher: publish to knowing the expert
	Done      []time.Duration // per fetcher: publish to holding it; 0: killed first
	Floor     []time.Duration // per fetcher: its fetch alone from the publisher
	Killed    []bool          // per fetcher
	Sent      int64           // publisher's bytes sent, publish to the last holder
	Failures  int             // fetches that failed and were started again
	TotalSent int64           // all nodes' bytes sent meanwhile
	Took      time.Duration   // real time of the whole run (TestSwarm sets it)
	Busy      []float64       // per second from publish: share of the live nodes' uplinks used
	Profile   string          // Real: where the CPU went (go tool pprof -top)
}

// runSwarm starts sc's nodes and publishes the adapter at node 0; every
// other node fetches the expert as soon as it hears of it (as a prefetch
// rule would make it). Fetchers sc.killed names are cut off once they
// hold sc.KillAt of it.
func runSwarm(t *testing.T, adapter string, sc scenario) (res swarmResult) {
	if !sc.Real {
		// Runs last, after the nodes closed: pubsub's announce retries
		// (after up to 1 s, go-libp2p-pubsub announceRetry) sleep on past
		// their node's close and must end inside the bubble. Cut-off nodes
		// (churn) leave their peers' queues full, which schedules them.
		t.Cleanup(func() { time.Sleep(2 * time.Second) })
	}
	nw := newNetwork(t, sc)
	ns := startNodes(t, nw, sc)
	time.Sleep(10 * time.Second) // bootstrap, DHT and the gossip mesh
	pub := ns[0]
	count := sc.Nodes
	sent0 := make([]int64, count)
	for i, n := range ns {
		sent0[i] = n.up.sent.Load()
	}
	start := time.Now()
	e, err := pub.Publish(context.Background(), api.PublishRequest{Path: adapter, Name: "swarm", Density: density})
	if err != nil {
		t.Fatal(err)
	}
	res = swarmResult{Scenario: sc, Size: uint64(e.Size)}
	if sc.Real {
		// On the real clock, from the announcement (the end of Publish,
		// whose compression is not the swarm's), under the CPU profiler.
		start = time.Now()
		stop := profile(t)
		defer func() { res.Profile = stop() }()
	}
	reach := make([]time.Duration, count)
	done := make([]time.Duration, count)
	killed := make([]bool, count)
	left := count - 1
	tr := newTracer(ns, start)
	for left > 0 {
		tr.sample(t, e.CID, done, killed)
		if time.Since(start) > 10*time.Minute {
			t.Fatalf("after 10 minutes %d of %d nodes lack the expert", left, count-1)
		}
		time.Sleep(10 * time.Millisecond)
		for i, n := range ns[1:] {
			i++
			if done[i] > 0 || killed[i] {
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
			case sc.killed(i) && float64(tr.Bytes) >= sc.KillAt*float64(e.Size):
				n.up.dead.Store(true)
				killed[i] = true
				left--
				if *trace {
					t.Logf("%5.2fs node %d killed holding %d bytes", time.Since(start).Seconds(), i, tr.Bytes)
				}
			case tr.State == api.StateFailed:
				res.Failures++
				t.Logf("node %d: fetch failed (%s); starting it again", i, tr.Error)
				if _, err := n.StartFetch(e.CID); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	res.Sent = pub.up.sent.Load() - sent0[0]
	for i, n := range ns {
		res.TotalSent += n.up.sent.Load() - sent0[i]
	}
	for i := 1; i < count; i++ {
		res.Floor = append(res.Floor, sc.floor(i, res.Size))
	}
	res.Reach, res.Done, res.Killed = reach[1:], done[1:], killed[1:]
	res.Busy = tr.busy
	return res
}

// tracer samples, every second, how much of the live nodes' uplinks was
// used (an idle uplink is time lost to the swarm), and with -trace logs
// it with the holders and the bytes each fetcher holds.
type tracer struct {
	ns    []*simNode
	start time.Time
	last  time.Time
	sent  []int64
	recv  []int64
	busy  []float64
}

func newTracer(ns []*simNode, start time.Time) *tracer {
	tr := &tracer{ns: ns, start: start, last: start, sent: make([]int64, len(ns)), recv: make([]int64, len(ns))}
	for i, n := range ns {
		tr.sent[i] = n.up.sent.Load()
		tr.recv[i] = n.up.recv.Load()
	}
	return tr
}

func (tr *tracer) sample(t *testing.T, c string, done []time.Duration, killed []bool) {
	d := time.Since(tr.last)
	if d < time.Second {
		return
	}
	tr.last = time.Now()
	var used, capacity float64
	var idle []int
	for i, n := range tr.ns {
		s := n.up.sent.Load()
		bits := float64(s-tr.sent[i]) * 8
		tr.sent[i] = s
		if killed[i] {
			continue
		}
		link := float64(tr.ns[i].bw) * d.Seconds()
		used += min(bits, link)
		capacity += link
		if bits < link/10 {
			idle = append(idle, i)
		}
	}
	tr.busy = append(tr.busy, used/capacity)
	if !*trace {
		return
	}
	var fetching []string
	holders := 0
	var down, downCap float64 // the downlinks of the fetchers still fetching
	for i, n := range tr.ns[1:] {
		r := n.up.recv.Load()
		bits := float64(r-tr.recv[i+1]) * 8
		tr.recv[i+1] = r
		if done[i+1] > 0 {
			holders++
		} else if x, err := n.Transfer(c); err == nil && !killed[i+1] {
			link := float64(n.bw) * d.Seconds()
			down += min(bits, link)
			downCap += link
			fetching = append(fetching, fmt.Sprintf("%d:%.1f/%.0f%%", i+1, float64(x.Bytes)/(1<<20), 100*bits/link))
		}
	}
	t.Logf("%5.1fs uplinks %3.0f%% used, %d idle (%v); downlinks of those fetching %3.0f%% used; publisher %.1f MiB; %d holders; holders per leaf %v; fetching (node:MiB/downlink used) %s",
		time.Since(tr.start).Seconds(), 100*used/capacity, len(idle), idle, 100*down/max(downCap, 1), float64(tr.sent[0])/(1<<20), holders, leafHolders(tr.ns, killed), strings.Join(fetching, " "))
}

// runPair publishes the adapter at one node and times a second node's
// fetch of it, from StartFetch to holding it, as the daemon runs it
// (providers from gossip, verified, stored and indexed).
func runPair(t *testing.T, adapter string, sc scenario) time.Duration {
	sc.Nodes = 2
	nw := newNetwork(t, sc)
	ns := startNodes(t, nw, sc)
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
