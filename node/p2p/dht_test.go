package p2p

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
)

func testCID(t *testing.T, s string) cid.Cid {
	t.Helper()
	sum, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, sum)
}

// Four hosts bootstrapped in a chain (each to the one before): the first
// provides a CID, the last finds it through the DHT and connects to it by
// peer ID alone, its addresses looked up in the DHT by the routed host.
func TestProvideFindChain(t *testing.T) {
	hosts := make([]*Host, 4)
	for i := range hosts {
		o := testOptions(t)
		if i > 0 {
			o.Bootstrap = []peer.AddrInfo{info(hosts[i-1])}
		}
		hosts[i] = newTestHost(t, o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, h := range hosts[1:] {
		if err := h.Bootstrap(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range hosts {
		testutil.Eventually(t, 15*time.Second, "a routing table entry", func() bool { return h.DHT.RoutingTable().Size() > 0 })
	}
	first, last := hosts[0], hosts[len(hosts)-1]

	c := testCID(t, "an expert")
	if _, err := last.FindProviders(ctx, c, 1); !errors.Is(err, ErrNoProviders) {
		t.Fatalf("before Provide: err = %v, want ErrNoProviders", err)
	}
	if err := first.Provide(ctx, c); err != nil {
		t.Fatal(err)
	}
	provs, err := last.FindProviders(ctx, c, 8)
	if err != nil {
		t.Fatal(err)
	}
	if len(provs) != 1 || provs[0].ID != first.ID() {
		t.Fatalf("providers %v, want only %s", provs, first.ID())
	}

	// Forget all about the provider but its ID, then connect by ID: the
	// routed host asks the DHT for its addresses.
	if err := last.Network().ClosePeer(first.ID()); err != nil {
		t.Fatal(err)
	}
	last.Peerstore().ClearAddrs(first.ID())
	last.DHT.RoutingTable().RemovePeer(first.ID())
	if err := last.Connect(ctx, peer.AddrInfo{ID: first.ID()}); err != nil {
		t.Fatalf("connect by peer ID: %v", err)
	}
	if last.Network().Connectedness(first.ID()) != network.Connected {
		t.Fatal("not connected to the provider")
	}

	// A host that provides does not find itself.
	if _, err := first.FindProviders(ctx, testCID(t, "nobody has this"), 0); !errors.Is(err, ErrNoProviders) {
		t.Fatalf("err = %v, want ErrNoProviders", err)
	}
}

// The DHT dials the bootstrap peers as it starts: that must be after the
// host listens, or the QUIC connection leaves from a random port instead
// of the listening one, and what peers observe of it (the NAT's mapping)
// is no use for hole punching.
func TestBootstrapDialsFromTheListenPort(t *testing.T) {
	o := testOptions(t)
	o.ListenAddrs = []ma.Multiaddr{loopQUIC}
	boot := newTestHost(t, o)
	for i := range 5 {
		o := testOptions(t)
		o.ListenAddrs = []ma.Multiaddr{loopQUIC}
		o.Bootstrap = []peer.AddrInfo{info(boot)}
		h := newTestHost(t, o)
		testutil.Eventually(t, 10*time.Second, "the DHT to dial the bootstrap peer", func() bool {
			return len(h.Network().ConnsToPeer(boot.ID())) > 0
		})
		var listen string
		for _, a := range h.Network().ListenAddresses() {
			if port, err := a.ValueForProtocol(ma.P_UDP); err == nil {
				listen = port
			}
		}
		for _, c := range h.Network().ConnsToPeer(boot.ID()) {
			if port, _ := c.LocalMultiaddr().ValueForProtocol(ma.P_UDP); port != listen {
				t.Fatalf("host %d: connection to the bootstrap peer from %s, not the listening port %s", i, c.LocalMultiaddr(), listen)
			}
		}
	}
}
