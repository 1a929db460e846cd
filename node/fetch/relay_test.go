package fetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// relayBytes counts what a relay carried.
type relayBytes struct{ n atomic.Int64 }

func (r *relayBytes) BytesTransferred(n int)              { r.n.Add(int64(n)) }
func (*relayBytes) RelayStatus(bool)                      {}
func (*relayBytes) ConnectionOpened()                     {}
func (*relayBytes) ConnectionClosed(time.Duration)        {}
func (*relayBytes) ConnectionRequestHandled(pbv2.Status)  {}
func (*relayBytes) ReservationAllowed(bool)               {}
func (*relayBytes) ReservationClosed(int)                 {}
func (*relayBytes) ReservationRequestHandled(pbv2.Status) {}
func (r *relayBytes) carried() int64                      { return r.n.Load() }
func (r *relayBytes) String() string                      { return size(uint64(r.carried())) }

var _ relayv2.MetricsTracer = (*relayBytes)(nil)

// relayLab is a requester reaching a provider behind "NAT" (it advertises
// no address) through a circuit relay with the given limit (nil: none).
type relayLab struct {
	req, prov host.Host
	relay     host.Host
	carried   *relayBytes
	root      cid.Cid
	data      []byte
}

func newRelayLab(t *testing.T, limit *relayv2.RelayLimit, n int, provOpts ProviderOptions) *relayLab {
	t.Helper()
	lab := &relayLab{carried: &relayBytes{}, data: randomBytes(n, 20)}
	lab.relay = newHost(t)
	opts := []relayv2.Option{relayv2.WithMetricsTracer(lab.carried), relayv2.WithLimit(limit)}
	if limit == nil {
		opts[1] = relayv2.WithInfiniteLimits()
	}
	rel, err := relayv2.New(lab.relay, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rel.Close() })

	lab.prov, err = libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.prov.Close() })
	b := newMem()
	lab.root = addFile(t, b, lab.data).Root
	p := NewProvider(lab.prov, b, provOpts)
	ctx, cancel := context.WithCancel(context.Background())
	go p.Serve(ctx)
	t.Cleanup(cancel)
	waitHandler(t, lab.prov)

	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	if _, err := client.Reserve(rctx, lab.prov, peer.AddrInfo{ID: lab.relay.ID(), Addrs: lab.relay.Addrs()}); err != nil {
		t.Fatalf("reserve: %v", err)
	}
	lab.req = newHost(t)
	circuit := lab.relay.Addrs()[0].Encapsulate(ma.StringCast("/p2p/" + lab.relay.ID().String() + "/p2p-circuit"))
	if err := lab.req.Connect(network.WithAllowLimitedConn(rctx, "test"), peer.AddrInfo{ID: lab.prov.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	return lab
}

// punch opens a direct connection from the requester to the provider, as
// a hole punch would.
func (lab *relayLab) punch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lab.req.Peerstore().AddAddrs(lab.prov.ID(), lab.prov.Network().ListenAddresses(), time.Hour)
	if _, err := lab.req.Network().DialPeer(network.WithForceDirectDial(ctx, "test"), lab.prov.ID()); err != nil {
		t.Errorf("direct dial: %v", err)
	}
}

func (lab *relayLab) fetch(t *testing.T, o Options, progress func(Progress)) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := newMem()
	l, err := NewFetcher(lab.req, b, o).Fetch(ctx, lab.root, []peer.ID{lab.prov.ID()}, progress)
	if err == nil && string(readFile(t, b, l)) != string(lab.data) {
		t.Fatal("fetched bytes differ")
	}
	return err
}

// A provider reached only through a relay serves the expert over it once
// no direct connection came within DirectWait.
func TestFetchThroughRelay(t *testing.T) {
	lab := newRelayLab(t, &relayv2.RelayLimit{Data: 64 << 20, Duration: time.Minute}, 2<<20, ProviderOptions{})
	if err := lab.fetch(t, Options{DirectWait: 100 * time.Millisecond}, nil); err != nil {
		t.Fatal(err)
	}
	if lab.carried.carried() < 2<<20 {
		t.Errorf("the relay carried %v of a 2 MiB expert", lab.carried)
	}
}

// A direct connection that opens while the request waits is used instead
// of the relayed one.
func TestFetchWaitsForDirect(t *testing.T) {
	lab := newRelayLab(t, nil, 2<<20, ProviderOptions{})
	before := lab.carried.carried()
	go lab.punch(t)
	if err := lab.fetch(t, Options{DirectWait: time.Minute}, nil); err != nil {
		t.Fatal(err)
	}
	if got := lab.carried.carried() - before; got > 32<<10 {
		t.Errorf("the relay carried %s of the expert though a direct connection came", size(uint64(got)))
	}
}

// A request running on a relayed connection moves to the direct one when
// it opens (a hole punch that succeeded late): the rest comes direct, and
// the provider is not counted as failed.
func TestFetchMovesToDirect(t *testing.T) {
	lab := newRelayLab(t, nil, 2<<20, ProviderOptions{PeerRate: 1 << 20})
	var punched atomic.Bool
	progress := func(p Progress) {
		if p.Bytes > 0 && punched.CompareAndSwap(false, true) {
			go lab.punch(t)
		}
	}
	var failed error
	o := Options{DirectWait: time.Millisecond, Failed: func(_ cid.Cid, _ peer.ID, err error) { failed = err }}
	if err := lab.fetch(t, o, progress); err != nil {
		t.Fatal(err)
	}
	if !punched.Load() || failed != nil {
		t.Fatalf("punched %v, provider failure %v", punched.Load(), failed)
	}
	if got := lab.carried.carried(); got > 3<<19 {
		t.Errorf("the relay carried %v of the 2 MiB expert: the request did not move to the direct connection", lab.carried)
	}
}

// A relay whose limit cannot carry the expert fails the fetch at once with
// an error that names the provider, the relay and its limit, and what to
// do; the provider is reported failed (not retried in this fetch).
func TestFetchRelayLimitFailsFast(t *testing.T) {
	lab := newRelayLab(t, relayv2.DefaultLimit(), 2<<20, ProviderOptions{}) // go-libp2p's 128 KiB, 2 min
	var failed error
	err := lab.fetch(t, Options{DirectWait: time.Millisecond, Failed: func(_ cid.Cid, _ peer.ID, err error) { failed = err }}, nil)
	var rl *RelayLimitError
	if !errors.Is(err, ErrIncomplete) || !errors.As(err, &rl) || !errors.Is(failed, ErrRelayLimit) {
		t.Fatalf("err = %v (provider failure %v): want ErrIncomplete with a RelayLimitError", err, failed)
	}
	if rl.Provider != lab.prov.ID() || rl.Relay != lab.relay.ID() || rl.LimitBytes != 128<<10 || rl.LimitDuration != 2*time.Minute {
		t.Errorf("%+v", rl)
	}
	for _, want := range []string{lab.prov.ID().String(), lab.relay.ID().String(), "128.0 KiB and 2m0s", "needs 2.1 MiB", "p2p.relay_service", "forward a port"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// A provider known only at addresses no other network can reach fails
// with an error that says so, not a bare dial error: whether the dial is
// refused at once (nothing listens) or hangs until its timeout (a
// blackhole, as a private address behind someone else's NAT is; the
// provider's silence must not be reported instead).
func TestFetchUnreachableSaysWhy(t *testing.T) {
	blackhole, err := net.ListenPacket("udp4", "127.0.0.1:0") // reads nothing, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer blackhole.Close()
	for _, tc := range []struct {
		name string
		addr func(gone host.Host) ma.Multiaddr
	}{
		{"refused", func(gone host.Host) ma.Multiaddr { return gone.Addrs()[0] }},
		{"blackhole", func(host.Host) ma.Multiaddr {
			return ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", blackhole.LocalAddr().(*net.UDPAddr).Port))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, gone := newHost(t), newHost(t)
			addr := tc.addr(gone)
			id := gone.ID()
			gone.Close()
			req.Peerstore().AddAddrs(id, []ma.Multiaddr{addr}, time.Hour)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			root := addFile(t, newMem(), randomBytes(1<<10, 21)).Root
			_, err := NewFetcher(req, newMem(), Options{}).Fetch(ctx, root, []peer.ID{id}, nil)
			if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "no public or relay address") || !strings.Contains(err.Error(), "p2p.announce") {
				t.Fatalf("err = %v, want ErrUnreachable", err)
			}
		})
	}
}
