package p2p

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func addrs(ss ...string) []ma.Multiaddr {
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		out[i] = ma.StringCast(s)
	}
	return out
}

func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// The factory follows kubo's Addresses.Announce, AppendAnnounce and
// NoAnnounce (core/node/libp2p/addrs.go makeAddrsFactory).
func TestAnnounceFactory(t *testing.T) {
	observed := []string{"/ip4/10.1.0.2/tcp/4001", "/ip4/127.0.0.1/tcp/4001", "/ip4/192.0.0.131/udp/4001/quic-v1",
		"/ip4/192.0.0.130/tcp/4001/p2p/12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq/p2p-circuit"}
	for _, tc := range []struct {
		name                  string
		replace, append, drop []string
		want                  []string
	}{
		{"nothing", nil, nil, nil, observed},
		{"replace", []string{"/ip4/192.0.0.140/tcp/4001"}, nil, nil, []string{"/ip4/192.0.0.140/tcp/4001"}},
		{"append", nil, []string{"/ip4/192.0.0.140/tcp/4001"}, nil, append(slices.Clone(observed), "/ip4/192.0.0.140/tcp/4001")},
		{"append what replace has once", []string{"/ip4/192.0.0.140/tcp/4001"}, []string{"/ip4/192.0.0.140/tcp/4001", "/dns4/example.com/tcp/4001"}, nil,
			[]string{"/ip4/192.0.0.140/tcp/4001", "/dns4/example.com/tcp/4001"}},
		{"drop exact", nil, nil, []string{"/ip4/127.0.0.1/tcp/4001"}, []string{observed[0], observed[2], observed[3]}},
		{"drop ranges", nil, nil, []string{"/ip4/10.0.0.0/ipcidr/8", "/ip4/127.0.0.0/ipcidr/8"}, []string{observed[2], observed[3]}},
		{"drop filters replace and append", []string{"/ip4/10.9.9.9/tcp/1", "/ip4/192.0.0.140/tcp/4001"}, []string{"/ip4/10.8.8.8/tcp/1"},
			[]string{"/ip4/10.0.0.0/ipcidr/8"}, []string{"/ip4/192.0.0.140/tcp/4001"}},
		{"drop a relay address", nil, nil, []string{observed[3]}, observed[:3]},
		{"ip6 range", nil, []string{"/ip6/fd00::1/tcp/4001", "/ip6/2001:4860::1/tcp/4001"}, []string{"/ip6/fc00::/ipcidr/7"},
			append(slices.Clone(observed), "/ip6/2001:4860::1/tcp/4001")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAnnounce(tc.replace, tc.append, tc.drop)
			if err != nil {
				t.Fatal(err)
			}
			f, err := a.factory()
			if err != nil {
				t.Fatal(err)
			}
			if got := addrStrings(f(addrs(observed...))); !slices.Equal(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestParseAnnounceErrors(t *testing.T) {
	for _, tc := range []struct {
		replace, append, drop []string
		want                  string
	}{
		{[]string{"nonsense"}, nil, nil, "announce"},
		{nil, []string{"/ip4/1.2.3.4/tcp"}, nil, "append announce"},
		{nil, nil, []string{"/ip4/10.0.0.0/ipcidr/40"}, "more than the address has"},
	} {
		if _, err := ParseAnnounce(tc.replace, tc.append, tc.drop); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseAnnounce(%v, %v, %v) = %v, want an error with %q", tc.replace, tc.append, tc.drop, err, tc.want)
		}
	}
}

// A host advertises what Announce says, and its peers learn it (identify).
func TestAnnounceAdvertised(t *testing.T) {
	fwd := "/ip4/192.0.0.140/tcp/4001"
	for _, tc := range []struct {
		name     string
		announce Announce
		want     func(own []string) []string
	}{
		{"append", Announce{Append: addrs(fwd)}, func(own []string) []string { return append(own, fwd) }},
		{"replace", Announce{Replace: addrs(fwd)}, func([]string) []string { return []string{fwd} }},
		{"drop loopback", Announce{Append: addrs(fwd), Drop: addrs("/ip4/127.0.0.0/ipcidr/8")}, func([]string) []string { return []string{fwd} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := newTestHost(t, testOptions(t))
			o := testOptions(t)
			o.Announce = tc.announce
			h := newTestHost(t, o)
			var own []string
			for _, a := range h.Network().ListenAddresses() {
				if !hasProto(a, ma.P_CIRCUIT) { // the relay transport's, never advertised
					own = append(own, a.String())
				}
			}
			want := tc.want(own)
			slices.Sort(want)
			got := addrStrings(h.Addrs())
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("Addrs() = %v, want %v", got, want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := plain.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Network().ListenAddresses()}); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 5*time.Second, "the peer to learn the announced addresses", func() bool {
				learned := addrStrings(plain.Peerstore().Addrs(h.ID()))
				for _, w := range want {
					if !slices.Contains(learned, w) {
						return false
					}
				}
				return true
			})
		})
	}
}
