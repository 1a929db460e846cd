package sweep

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/x/simlibp2p"

	"github.com/expertd/expertd/node/fetch/fetchtest"
)

// link is the access link of every node: simnet gives each node its own
// uplink and downlink of BitsPerSecond, each a token bucket of one
// 1500-byte MTU (exact on the virtual clock) behind an FQ-CoDel queue; a
// router between them delays every packet by RTT/2.
type link struct {
	RTT           time.Duration
	BitsPerSecond int
}

// floor is the physical floor for size bytes: the bytes at line rate
// plus two round trips.
func (l link) floor(size int) time.Duration {
	return time.Duration(float64(size)*8/float64(l.BitsPerSecond)*float64(time.Second)) + 2*l.RTT
}

func (l link) String() string {
	return fmt.Sprintf("%d Mbit/s up and down per node, RTT %v", l.BitsPerSecond/simlibp2p.OneMbps, l.RTT)
}

// connect opens a connection from a to b and returns once both sides have
// identified each other and a round trip has passed for the last packets
// of the handshake to land: what follows starts on a quiet connection.
func connect(tb testing.TB, a, b host.Host, rtt time.Duration) {
	tb.Helper()
	if err := a.Connect(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		tb.Fatal(err)
	}
	for _, side := range [][2]host.Host{{a, b}, {b, a}} {
		ids, ok := side[0].(interface{ IDService() identify.IDService })
		if !ok {
			continue
		}
		for _, c := range side[0].Network().ConnsToPeer(side[1].ID()) {
			<-ids.IDService().IdentifyWait(c)
		}
	}
	time.Sleep(rtt)
}

// reconnect replaces a's connection to b by a new one: the next transfer
// starts from QUIC's initial congestion window and stream windows.
func reconnect(tb testing.TB, a, b host.Host, rtt time.Duration) {
	tb.Helper()
	fetchtest.Disconnect(tb, a, b)
	connect(tb, a, b, rtt)
}
