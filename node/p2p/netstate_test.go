package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Connections are told apart: dialed ones are direct, those through a
// relay name the relay and its limits.
func TestConnKinds(t *testing.T) {
	o := testOptions(t)
	o.RelayService = testRelayService(64<<20, 5*time.Minute)
	r := newTestHost(t, o)
	a, b := behindNAT(t), behindNAT(t)
	relayed(t, r, a, b)
	got := a.Conns(b.ID())
	if len(got) != 1 {
		t.Fatalf("conns to b: %+v", got)
	}
	if c := got[0]; c.Kind != ConnRelayed || c.Relay != r.ID() || c.LimitBytes != 64<<20 || c.LimitDuration != 5*time.Minute {
		t.Errorf("relayed conn: %+v", c)
	}
	got = a.Conns(r.ID())
	if len(got) != 1 || got[0].Kind != ConnDirect || got[0].Relay != "" || got[0].Opened.IsZero() {
		t.Errorf("conns to the relay: %+v", got)
	}
}

// A node that AutoNAT finds private and that has a relay reserves a slot
// on it, and says so.
func TestReservationsAndReachability(t *testing.T) {
	o := testOptions(t)
	o.RelayService = testRelayService(1<<30, 10*time.Minute)
	r := newTestHost(t, o)
	plain := newTestHost(t, testOptions(t))
	if got := plain.Reachability(); got != ReachUnknown {
		t.Errorf("reachability of a node AutoNAT has not probed: %s", got)
	}
	if plain.RelayService() || !r.RelayService() {
		t.Errorf("relay service: %v on the plain node, %v on the relay", plain.RelayService(), r.RelayService())
	}

	o = testOptions(t)
	o.Relays = []peer.AddrInfo{info(r)}
	o.Extra = []libp2p.Option{libp2p.ForceReachabilityPrivate()}
	a := newTestHost(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, info(r)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "a reservation on the relay", func() bool {
		rs := a.Reservations()
		return len(rs) == 1 && rs[0].Relay == r.ID()
	})
	// The reachability comes with an event the host reads on its own.
	testutil.Eventually(t, 10*time.Second, "reachability private", func() bool { return a.Reachability() == ReachPrivate })
}
