package p2p

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
)

func hasProto(a ma.Multiaddr, code int) bool {
	_, err := a.ValueForProtocol(code)
	return err == nil
}

// A host listens on TCP and QUIC on loopback, and peers can reach it over each.
func TestListenTCPAndQUIC(t *testing.T) {
	relay := newTestHost(t, testOptions(t))
	o := testOptions(t)
	o.HolePunching, o.AutoNAT = true, true
	o.Relays = []peer.AddrInfo{info(relay)}
	a := newTestHost(t, o)

	var tcp, quic ma.Multiaddr
	for _, addr := range a.Addrs() {
		ip, _ := addr.ValueForProtocol(ma.P_IP4)
		switch {
		case ip != "127.0.0.1":
			t.Errorf("address %s is not on loopback", addr)
		case hasProto(addr, ma.P_QUIC_V1):
			quic = addr
		case hasProto(addr, ma.P_TCP):
			tcp = addr
		}
	}
	if tcp == nil || quic == nil {
		t.Fatalf("addrs %v: want a TCP and a QUIC v1 address", a.Addrs())
	}
	for _, tc := range []struct {
		name   string
		listen ma.Multiaddr
		addr   ma.Multiaddr
		code   int
	}{
		{"tcp", loopTCP, tcp, ma.P_TCP},
		{"quic-v1", loopQUIC, quic, ma.P_QUIC_V1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			o.ListenAddrs = []ma.Multiaddr{tc.listen}
			b := newTestHost(t, o)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: []ma.Multiaddr{tc.addr}}); err != nil {
				t.Fatal(err)
			}
			conns := b.Network().ConnsToPeer(a.ID())
			if len(conns) == 0 || !hasProto(conns[0].RemoteMultiaddr(), tc.code) {
				t.Fatalf("conns %v, want one over %s", conns, tc.name)
			}
			if err := b.DHT.Ping(ctx, a.ID()); err != nil { // a DHT request over it
				t.Fatal(err)
			}
		})
	}
}

func TestNoListenAddrs(t *testing.T) {
	relay := newTestHost(t, testOptions(t))
	o := testOptions(t)
	o.ListenAddrs = nil
	o.Relays = []peer.AddrInfo{info(relay)} // AutoRelay needs the relay transport
	h := newTestHost(t, o)
	for _, a := range h.Network().ListenAddresses() {
		if !hasProto(a, ma.P_CIRCUIT) { // only the relay transport's implicit one
			t.Fatalf("listening on %v", h.Network().ListenAddresses())
		}
	}
	if err := h.Close(); err != nil { // and again in Cleanup
		t.Fatal(err)
	}
}

func TestDHTModes(t *testing.T) {
	kad := protocol.ID("/expertd/kad/1.0.0")
	for _, tc := range []struct {
		mode   DHTMode
		serves bool
	}{
		{DHTAuto, true}, // reachability unknown on loopback: serves
		{DHTServer, true},
		{DHTClient, false},
	} {
		o := testOptions(t)
		o.DHTMode = tc.mode
		h := newTestHost(t, o)
		if got := slices.Contains(h.Mux().Protocols(), kad); got != tc.serves {
			t.Errorf("mode %s: serves %s = %v, want %v", tc.mode, kad, got, tc.serves)
		}
	}
}

// With AllowPrivateAddrs off, the DHT advertises and keeps public addresses
// only, so a loopback node offers none.
func TestPrivateAddrsPolicy(t *testing.T) {
	o := testOptions(t)
	if got := newTestHost(t, o).DHT.FilteredAddrs(); len(got) != 2 {
		t.Errorf("AllowPrivateAddrs: DHT addresses %v, want the two loopback ones", got)
	}
	o = testOptions(t)
	o.AllowPrivateAddrs = false
	if got := newTestHost(t, o).DHT.FilteredAddrs(); len(got) != 0 {
		t.Errorf("public only: DHT addresses %v, want none", got)
	}
}

func TestLimits(t *testing.T) {
	o := Options{MaxMemory: 300 << 20, MaxFDs: 100, MaxConns: 50, MaxStreams: 400}
	l := limits(&o).ToPartialLimitConfig()
	sys := l.System
	if sys.Memory != rcmgr.LimitVal64(o.MaxMemory) || sys.FD != 100 || sys.Conns != 50 || sys.Streams != 400 {
		t.Errorf("system %+v", sys)
	}
	if sys.ConnsInbound > 50 || sys.ConnsOutbound != 50 || sys.StreamsInbound > 400 || sys.StreamsOutbound != 400 {
		t.Errorf("system directions %+v", sys)
	}
	tr := l.Transient
	if tr.Conns <= 0 || tr.Conns > sys.Conns || tr.Streams > sys.Streams || tr.Memory > sys.Memory || l.PeerDefault.Streams <= 0 {
		t.Errorf("transient %+v, peer %+v", tr, l.PeerDefault)
	}
	if len(l.Service) == 0 {
		t.Error("libp2p's service limits are missing")
	}
}

func TestOptionsRejected(t *testing.T) {
	for name, mod := range map[string]func(*Options){
		"no identity":         func(o *Options) { o.Identity = nil },
		"high above max":      func(o *Options) { o.ConnLow, o.ConnHigh, o.MaxConns = 10, 100, 50 },
		"low above high":      func(o *Options) { o.ConnLow, o.ConnHigh = 20, 10 },
		"bad mode":            func(o *Options) { o.DHTMode = "peer" },
		"tiny memory":         func(o *Options) { o.MaxMemory = 1000 },
		"unsupported address": func(o *Options) { o.ListenAddrs = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/0")} },
	} {
		o := testOptions(t)
		mod(&o)
		h, err := NewHost(context.Background(), o)
		if err == nil {
			h.Close()
			t.Errorf("%s: NewHost succeeded", name)
		}
	}
}

func TestParseAddrInfos(t *testing.T) {
	const id = "12D3KooWGRUVh7V3ghYYZRfEgQPGc6ZUBHVohDXbhwuqa1FtZ9sb"
	infos, err := ParseAddrInfos([]string{
		"/ip4/192.0.2.1/tcp/4001/p2p/" + id,
		"/ip4/192.0.2.1/udp/4001/quic-v1/p2p/" + id,
	})
	if err != nil || len(infos) != 1 || len(infos[0].Addrs) != 2 || infos[0].ID.String() != id {
		t.Fatalf("%v %v", infos, err)
	}
	if _, err := ParseAddrInfos([]string{"/ip4/192.0.2.1/tcp/4001"}); err == nil {
		t.Error("an address without /p2p parsed")
	}
	if _, err := ParseMultiaddrs([]string{"/ip4/1.2.3/tcp/1"}); err == nil {
		t.Error("a bad multiaddr parsed")
	}
}

func TestBootstrapUnreachable(t *testing.T) {
	ghost := testOptions(t) // a peer that never runs
	id, err := peer.IDFromPrivateKey(ghost.Identity)
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions(t)
	o.Bootstrap = []peer.AddrInfo{{ID: id, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1")}}}
	h := newTestHost(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Bootstrap(ctx); !errors.Is(err, ErrBootstrap) {
		t.Fatalf("err = %v, want ErrBootstrap", err)
	}
}
