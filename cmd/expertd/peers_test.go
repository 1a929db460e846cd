package main

import (
	"strings"
	"testing"

	"github.com/expertd/expertd/node/api"
)

// `expertd peers` says how this node is reached and how each peer is.
func TestPrintPeers(t *testing.T) {
	id := api.Identity{ID: "12D3KooWSelf", Reachability: "private",
		Reservations: []api.Reservation{{Relay: "12D3KooWRelay", Addrs: []string{"/ip4/192.0.0.130/tcp/4001/p2p/12D3KooWRelay/p2p-circuit"}}}}
	ps := []api.Peer{
		{ID: "12D3KooWRelay", LatencyMS: 1.5, Conns: []api.Conn{{Addr: "/ip4/192.0.0.130/tcp/4001", Kind: "direct"}}},
		{ID: "12D3KooWAlice", Conns: []api.Conn{
			{Addr: "/ip4/192.0.0.130/tcp/4001/p2p/12D3KooWRelay/p2p-circuit", Kind: "relayed", Relay: "12D3KooWRelay", LimitBytes: 1 << 30, LimitSeconds: 600},
			{Addr: "/ip4/192.0.0.131/udp/4001/quic-v1", Kind: "hole-punched"},
		}},
		{ID: "12D3KooWOld", Addrs: []string{"/ip4/10.0.0.9/tcp/4001"}},
	}
	var b strings.Builder
	printPeers(&b, id, ps)
	out := b.String()
	for _, want := range []string{
		"reachability: private\n",
		"relay reservation: 12D3KooWRelay [/ip4/192.0.0.130/tcp/4001/p2p/12D3KooWRelay/p2p-circuit]\n",
		"12D3KooWRelay  1.5 ms   direct",
		"relayed (limit 1.00 GiB, 10m0s)  /ip4/192.0.0.130/tcp/4001/p2p/12D3KooWRelay/p2p-circuit",
		"hole-punched",
		"12D3KooWOld    -        -",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printPeers(&b, api.Identity{RelayService: true}, nil)
	if !strings.HasPrefix(b.String(), "reachability: unknown; relay service on\n") {
		t.Errorf("relay node: %q", b.String())
	}
}

// `expertd id` prints a table for people, each address alone at the end of
// its line (the README's quick start greps one for --bootstrap).
func TestPrintIdentity(t *testing.T) {
	addr := "/ip4/127.0.0.1/tcp/4101/p2p/12D3KooWSelf"
	var b strings.Builder
	printIdentity(&b, api.Identity{ID: "12D3KooWSelf", Addrs: []string{addr, "/ip4/127.0.0.1/udp/4101/quic-v1/p2p/12D3KooWSelf"}, Reachability: "public"})
	want := "peer id       12D3KooWSelf\n" +
		"addresses     " + addr + "\n" +
		"              /ip4/127.0.0.1/udp/4101/quic-v1/p2p/12D3KooWSelf\n" +
		"reachability  public\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// ls says where each expert is, and that a local one is served by others too.
func TestWhere(t *testing.T) {
	for _, c := range []struct {
		e    api.Expert
		want string
	}{
		{api.Expert{Local: true}, "local"},
		{api.Expert{Local: true, Pinned: true, Providers: []string{"12D3KooWA"}}, "local, pinned (+1 other provider)"},
		{api.Expert{Local: true, Providers: []string{"a", "b"}}, "local (+2 other providers)"},
		{api.Expert{Providers: []string{"a"}}, "remote (1 provider)"},
		{api.Expert{Providers: []string{"a"}, ProviderCount: 40}, "remote (40 providers)"},
	} {
		if got := where(c.e); got != c.want {
			t.Errorf("%+v: %q, want %q", c.e, got, c.want)
		}
	}
}
