package node

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
)

// TestPartitionHeal splits six nodes into two groups of three, lets each
// group publish an expert the other must not see, then heals the split
// with one connection: every node's catalog converges to both experts and
// a node of one group fetches the other group's expert.
//
// The partition: each group bootstraps among itself; one bridge
// connection (a2-b2) joins them long enough for the DHT and gossipsub to
// learn the other side, then is cut. libp2p has no gater that can be
// toggled at run time (node.New builds the host, and its gater, once), so
// the cut forgets every cross-group address on all six nodes
// (Peerstore.ClearAddrs) and closes the cross connections, repeatedly
// until neither has come back for a second (a DHT query or dial in flight
// can bring an address back once). With no address left anywhere nothing
// can redial: the DHT's stale routing-table entries fail to dial. A
// connection watcher on every node fails the test if a cross-group
// connection appears anyway while partitioned.
func TestPartitionHeal(t *testing.T) {
	if testing.Short() {
		t.Skip("six libp2p nodes")
	}
	set := map[string]any{"gossip.reannounce": "2s", "gossip.ttl": "1m"}
	var A, B []*Node
	for _, g := range []*[]*Node{&A, &B} {
		first := startNode(t, nil, set)
		*g = []*Node{first, startNode(t, addr(first), set), startNode(t, addr(first), set)}
	}
	all := append(append([]*Node(nil), A...), B...)
	name := map[peer.ID]string{}
	for i, n := range all {
		name[n.p2p.ID()] = fmt.Sprintf("%c%d", "ab"[i/3], i%3)
	}
	inA := func(p peer.ID) bool {
		for _, n := range A {
			if n.p2p.ID() == p {
				return true
			}
		}
		return false
	}
	for _, g := range [][]*Node{A, B} {
		for _, n := range g[1:] {
			testutil.Eventually(t, 15*time.Second, name[n.p2p.ID()]+" connects to its group's bootstrap peer", func() bool {
				return n.p2p.Network().Connectedness(g[0].p2p.ID()) == network.Connected
			})
		}
	}

	// The bridge: both DHTs route through it before it is cut.
	connectTo(t, A[2], B[2])
	testutil.Eventually(t, 15*time.Second, "a2 and b2 have each other in their DHT routing tables", func() bool {
		return A[2].p2p.DHT.RoutingTable().Find(B[2].p2p.ID()) != "" &&
			B[2].p2p.DHT.RoutingTable().Find(A[2].p2p.ID()) != ""
	})
	cutPartition(t, A, B)
	if c := crossConns(all, inA); c != "" {
		t.Fatalf("still connected across the partition: %s", c)
	}
	leaks := watchCross(all, inA, name)

	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	pubA, err := A[1].Publish(context.Background(), api.PublishRequest{Path: abs(fixture), Name: "python-a"})
	if err != nil {
		t.Fatal(err)
	}
	pubB, err := B[1].Publish(context.Background(), api.PublishRequest{Path: abs("../compress/testdata/peft/c-ia3"), Name: "c-b"})
	if err != nil {
		t.Fatal(err)
	}
	// Each group sees its own expert, and its members receive the
	// publisher's announcement and two re-announcements (at least three
	// topic messages), so the other group had every chance to hear them.
	accepted0 := map[*Node]uint64{}
	for _, n := range all {
		accepted0[n] = n.gossip.Stats().Accepted
	}
	for _, g := range []struct {
		nodes []*Node
		cid   string
	}{{A, pubA.CID}, {B, pubB.CID}} {
		for _, n := range g.nodes {
			testutil.Eventually(t, 20*time.Second, name[n.p2p.ID()]+" sees its group's expert", func() bool { return sees(n, g.cid) })
		}
		for _, n := range []*Node{g.nodes[0], g.nodes[2]} {
			testutil.Eventually(t, 20*time.Second, name[n.p2p.ID()]+" hears its group's re-announcements", func() bool {
				return n.gossip.Stats().Accepted >= accepted0[n]+3
			})
		}
	}
	if l := leaks(); l != "" {
		t.Fatalf("the partition leaked: %s", l)
	}
	for _, n := range A {
		if sees(n, pubB.CID) {
			t.Errorf("%s sees group B's expert across the partition", name[n.p2p.ID()])
		}
	}
	for _, n := range B {
		if sees(n, pubA.CID) {
			t.Errorf("%s sees group A's expert across the partition", name[n.p2p.ID()])
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Heal with one connection between two nodes that neither publish nor
	// were the bridge.
	healed := time.Now()
	connectTo(t, A[0], B[0])
	const convergence = 30 * time.Second
	var state string
	converged := func() bool {
		var missing []string
		for _, n := range all {
			for _, c := range []string{pubA.CID, pubB.CID} {
				if !sees(n, c) {
					missing = append(missing, name[n.p2p.ID()]+" lacks "+c[len(c)-6:])
				}
			}
		}
		state = strings.Join(missing, ", ")
		return len(missing) == 0
	}
	if !within(convergence, converged) {
		t.Fatalf("catalogs did not converge within %v of the heal: %s", convergence, state)
	}
	t.Logf("catalogs of all 6 nodes converged %v after the heal (re-announce period 2s)", time.Since(healed).Round(time.Millisecond))

	// b2 fetches from a1, the only provider, two hops away across the heal.
	fetched := time.Now()
	waitFetched(t, B[2], pubA.CID)
	e, err := B[2].Expert(pubA.CID)
	if err != nil || !e.Local || e.Name != "python-a" || e.Size != pubA.Size {
		t.Fatalf("b2's copy of group A's expert: %+v %v", e, err)
	}
	t.Logf("b2 fetched group A's expert (%d bytes) in %v", e.Size, time.Since(fetched).Round(time.Millisecond))
}

// connectTo connects a to b by b's listen addresses.
func connectTo(t *testing.T, a, b *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.p2p.Connect(ctx, peer.AddrInfo{ID: b.p2p.ID(), Addrs: b.p2p.Addrs()}); err != nil {
		t.Fatalf("connect %s to %s: %v", a.p2p.ID(), b.p2p.ID(), err)
	}
}

// sees reports whether c is in n's catalog, local or remote.
func sees(n *Node, c string) bool {
	for _, e := range n.experts(api.Filter{Remote: true}) {
		if e.CID == c {
			return true
		}
	}
	return false
}

// cutPartition forgets every address of the other group on every node and
// closes the cross-group connections, again and again until no address or
// connection across has reappeared for a second.
func cutPartition(t *testing.T, A, B []*Node) {
	t.Helper()
	const quiet, within = time.Second, 15 * time.Second
	deadline := time.Now().Add(within)
	calm, cuts := time.Time{}, 0
	for {
		dirty := false
		for _, x := range A {
			for _, y := range B {
				for _, pair := range [][2]*Node{{x, y}, {y, x}} {
					a, b := pair[0].p2p, pair[1].p2p.ID()
					if len(a.Peerstore().Addrs(b)) > 0 || a.Network().Connectedness(b) != network.NotConnected {
						dirty = true
					}
					a.Peerstore().ClearAddrs(b)
					_ = a.Network().ClosePeer(b)
				}
			}
		}
		now := time.Now()
		switch {
		case dirty || calm.IsZero():
			calm = now
			cuts++
		case now.Sub(calm) >= quiet:
			t.Logf("partition held after %d cut(s)", cuts)
			return
		case now.After(deadline):
			t.Fatalf("the groups kept finding each other for %v", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// crossConns describes the connections between the groups ("" if none).
func crossConns(nodes []*Node, inA func(peer.ID) bool) string {
	var out []string
	for _, n := range nodes {
		for _, c := range n.p2p.Network().Conns() {
			if inA(n.p2p.ID()) != inA(c.RemotePeer()) {
				out = append(out, fmt.Sprintf("%s-%s", n.p2p.ID().ShortString(), c.RemotePeer().ShortString()))
			}
		}
	}
	return strings.Join(out, ", ")
}

// watchCross records every cross-group connection opened from now on, on
// any of nodes; the returned func stops watching and describes them.
func watchCross(nodes []*Node, inA func(peer.ID) bool, name map[peer.ID]string) func() string {
	var mu sync.Mutex
	var seen []string
	type watched struct {
		n *Node
		b *network.NotifyBundle
	}
	var ws []watched
	for _, n := range nodes {
		self := n.p2p.ID()
		b := &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
			if inA(self) != inA(c.RemotePeer()) {
				mu.Lock()
				seen = append(seen, fmt.Sprintf("%s-%s (%s)", name[self], name[c.RemotePeer()], describe(c.RemoteMultiaddr(), c.Stat().Direction)))
				mu.Unlock()
			}
		}}
		n.p2p.Network().Notify(b)
		ws = append(ws, watched{n, b})
	}
	return func() string {
		for _, w := range ws {
			w.n.p2p.Network().StopNotify(w.b)
		}
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(seen, ", ")
	}
}

func describe(a ma.Multiaddr, d network.Direction) string { return d.String() + " " + a.String() }
