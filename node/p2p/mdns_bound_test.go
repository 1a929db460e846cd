package p2p

import (
	"net"
	"strconv"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// A LAN flooding mDNS finds holds at most mdnsMaxConnecting connection
// attempts at once: finds beyond them are dropped, not queued or run
// (a capacity without a bound passed every other test, issue 19). The
// found peers accept TCP and never answer, so every attempt hangs until
// close cancels it.
func TestMDNSNotifeeBoundsAttempts(t *testing.T) {
	a := newTestHost(t, testOptions(t))
	n := newMDNSNotifee(a, a.log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // hold what it accepts until the listener closes
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	for range 3 * mdnsMaxConnecting {
		n.HandlePeerFound(peer.AddrInfo{ID: testPeerID(t), Addrs: []ma.Multiaddr{addr}})
	}
	if got := len(n.slots); got != mdnsMaxConnecting {
		t.Errorf("%d attempts run after %d finds of silent peers, want %d", got, 3*mdnsMaxConnecting, mdnsMaxConnecting)
	}
	n.close()
	if got := len(n.slots); got != 0 {
		t.Fatalf("%d attempts still hold a slot after close", got)
	}
}
