package p2p

import (
	"context"
	"io"
	"math"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

func testRelayService(bytes int64, d time.Duration) *RelayService {
	return &RelayService{
		MaxCircuitBytes: bytes, MaxCircuitDuration: d,
		MaxCircuits: 8, MaxCircuitsPerPeer: 4, MaxReservations: 8, MaxReservationsPerIP: 8,
		ReservationTTL: time.Hour,
	}
}

// behindNAT is a host that advertises no address of its own: its peers
// reach it through a relay only.
func behindNAT(t *testing.T) *Host {
	o := testOptions(t)
	o.Announce.Drop = addrs("/ip4/127.0.0.0/ipcidr/8")
	return newTestHost(t, o)
}

// relayed returns a connected to b over b's reservation on relay r, and
// that connection.
func relayed(t *testing.T, r, a, b *Host) network.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.Reserve(ctx, b, info(r)); err != nil {
		t.Fatalf("reserve: %v", err)
	}
	circuit := r.Addrs()[0].Encapsulate(ma.StringCast("/p2p/" + r.ID().String() + "/p2p-circuit"))
	if err := a.Connect(network.WithAllowLimitedConn(ctx, "test"), peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatalf("connect over the relay: %v", err)
	}
	conns := a.Network().ConnsToPeer(b.ID())
	if len(conns) != 1 || !hasProto(conns[0].RemoteMultiaddr(), ma.P_CIRCUIT) {
		t.Fatalf("conns %v: want one relayed", conns)
	}
	return conns[0]
}

// pull has b send n bytes to a over a new stream and returns what a read.
func pull(t *testing.T, a, b *Host, n int) int64 {
	t.Helper()
	const proto = "/expertd-test/pull/1"
	b.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		_, _ = s.Write(make([]byte, n))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := a.NewStream(network.WithAllowLimitedConn(ctx, "test"), b.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, _ := io.Copy(io.Discard, s)
	return got
}

// A relay service announces and enforces the configured limits: a
// relayed connection is limited to MaxCircuitBytes each way.
func TestRelayServiceLimits(t *testing.T) {
	o := testOptions(t)
	o.RelayService = testRelayService(1<<20, time.Minute)
	r := newTestHost(t, o)
	a, b := behindNAT(t), behindNAT(t)
	c := relayed(t, r, a, b)
	st := c.Stat()
	if !st.Limited || st.Extra[client.StatLimitData] != uint64(1<<20) || st.Extra[client.StatLimitDuration] != time.Minute {
		t.Fatalf("stat: limited %v, extra %v: want limited to 1 MiB and 1m", st.Limited, st.Extra)
	}
	if got := pull(t, a, b, 256<<10); got != 256<<10 {
		t.Fatalf("read %d bytes of 256 KiB under the limit", got)
	}
	// The circuit has carried 256 KiB and the overheads already: the rest
	// of its MiB passes, not 2 MiB.
	if got := pull(t, a, b, 2<<20); got >= 1<<20 {
		t.Fatalf("read %d bytes of 2 MiB through a relay limited to 1 MiB", got)
	}
}

// With no limits, relayed connections are not limited: every protocol may
// use them. With one limit only, the other is the largest the protocol
// can say, not go-libp2p's "nothing passes" of a zero.
func TestRelayServiceUnlimited(t *testing.T) {
	for _, tc := range []struct {
		name     string
		bytes    int64
		d        time.Duration
		limited  bool
		data     uint64
		duration time.Duration
	}{
		{"none", 0, 0, false, 0, 0},
		{"duration only", 0, time.Minute, true, math.MaxInt64, time.Minute},
		{"bytes only", 64 << 20, 0, true, 64 << 20, math.MaxUint32 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			o.RelayService = testRelayService(tc.bytes, tc.d)
			r := newTestHost(t, o)
			a, b := behindNAT(t), behindNAT(t)
			st := relayed(t, r, a, b).Stat()
			if st.Limited != tc.limited || tc.limited && (st.Extra[client.StatLimitData] != tc.data || st.Extra[client.StatLimitDuration] != tc.duration) {
				t.Fatalf("stat: limited %v, extra %v", st.Limited, st.Extra)
			}
			if got := pull(t, a, b, 2<<20); got != 2<<20 {
				t.Fatalf("read %d bytes of 2 MiB", got)
			}
		})
	}
}

func TestRelayServiceValidate(t *testing.T) {
	for _, r := range []*RelayService{
		testRelayService(-1, 0),
		testRelayService(0, time.Millisecond),
		{MaxCircuits: 0, MaxCircuitsPerPeer: 1, MaxReservations: 1, MaxReservationsPerIP: 1, ReservationTTL: time.Hour},
		{MaxCircuits: 1, MaxCircuitsPerPeer: 1, MaxReservations: 1, MaxReservationsPerIP: 1, ReservationTTL: time.Minute},
	} {
		o := testOptions(t)
		o.RelayService = r
		if _, err := NewHost(context.Background(), o); err == nil {
			t.Errorf("NewHost with relay service %+v: no error", *r)
		}
	}
}

// A peer cannot take more of a relay than its share: relayed connections
// are bounded per peer and in all.
func TestRelayServiceCircuitLimits(t *testing.T) {
	for _, tc := range []struct {
		name           string
		total, per, ok int
	}{
		{"per peer", 8, 1, 1},
		{"in all", 2, 4, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			o.RelayService = testRelayService(1<<20, time.Minute)
			o.RelayService.MaxCircuits, o.RelayService.MaxCircuitsPerPeer = tc.total, tc.per
			r := newTestHost(t, o)
			b := behindNAT(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := client.Reserve(ctx, b, info(r)); err != nil {
				t.Fatalf("reserve: %v", err)
			}
			circuit := r.Addrs()[0].Encapsulate(ma.StringCast("/p2p/" + r.ID().String() + "/p2p-circuit"))
			connected := 0
			for range tc.ok + 1 {
				a := behindNAT(t)
				if err := a.Connect(network.WithAllowLimitedConn(ctx, "test"), peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{circuit}}); err == nil {
					connected++
				}
			}
			if connected != tc.ok {
				t.Fatalf("%d of %d sources connected to one destination through a relay allowing %d a peer, %d in all: want %d",
					connected, tc.ok+1, tc.per, tc.total, tc.ok)
			}
		})
	}
}
