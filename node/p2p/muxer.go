package p2p

import (
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
)

// streamWindow is the receive window a yamux stream (TCP connections)
// starts with. go-libp2p's 256 KiB grows only while half of it is read
// within four round trips, so on a long link a fetch over TCP spends much
// of its time waiting for window updates (docs/bench/latency.md compares
// it with go-libp2p's defaults). The window must hold about twice
// bandwidth x RTT. Memory: the resource manager reserves 256 KiB a stream,
// not 4 MiB, but a stream's window fills only while its reader lags, and
// fetch frames are read as they come. (go-yamux v5.1.0's
// Stream.sendWindowUpdate also sends only the growth when it doubles a
// window, not the credit for the bytes read, so a sender stalls a round
// trip at each update while windows are small.)
const streamWindow = 4 << 20

// Muxer is go-libp2p's yamux with the larger initial stream window: the
// daemon's stream muxer on TCP (and what node/fetch/linkbench measures).
func Muxer() libp2p.Option {
	t := *yamux.DefaultTransport
	t.InitialStreamWindowSize = streamWindow
	return libp2p.Muxer(yamux.ID, &t)
}
