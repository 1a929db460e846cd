package gossip

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestTrusted(t *testing.T) {
	alice, bob, carol := testPeer(t), testPeer(t), testPeer(t)
	entry := func(publisher peer.ID, signed bool) Entry {
		return Entry{Announcement: Announcement{Publisher: publisher}, Signed: signed}
	}
	for _, tc := range []struct {
		name       string
		e          Entry
		publishers []peer.ID
		want       bool
	}{
		{"no list, unsigned", entry(alice, false), nil, false},
		{"no list, signed", entry(alice, true), nil, false},
		{"empty list, signed", entry(alice, true), []peer.ID{}, false},
		{"listed, signed", entry(alice, true), []peer.ID{bob, alice}, true},
		{"listed, unsigned claim", entry(alice, false), []peer.ID{alice}, false},
		{"not listed, signed", entry(carol, true), []peer.ID{alice, bob}, false},
		{"not listed, unsigned", entry(carol, false), []peer.ID{alice, bob}, false},
		{"no publisher", entry("", true), []peer.ID{alice}, false},
	} {
		if got := Trusted(tc.e, tc.publishers); got != tc.want {
			t.Errorf("%s: Trusted = %v, want %v", tc.name, got, tc.want)
		}
	}
}
