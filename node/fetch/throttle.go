package fetch

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// throttle caps the bytes per second served to each peer, so one peer
// cannot take a provider's whole uplink. A zero rate means no cap.
type throttle struct {
	rate  rate.Limit
	burst int

	mu    sync.Mutex
	peers map[peer.ID]*peerLimit
}

type peerLimit struct {
	lim     *rate.Limiter
	streams int // open streams using lim; the entry goes with the last
}

func newThrottle(bytesPerSec int64) *throttle {
	if bytesPerSec <= 0 {
		return nil
	}
	// A leaf must fit in one burst.
	return &throttle{rate: rate.Limit(bytesPerSec), burst: maxBlockFrame, peers: map[peer.ID]*peerLimit{}}
}

// open returns p's limiter; close must be called when the stream ends.
func (t *throttle) open(p peer.ID) *rate.Limiter {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	pl := t.peers[p]
	if pl == nil {
		pl = &peerLimit{lim: rate.NewLimiter(t.rate, t.burst)}
		t.peers[p] = pl
	}
	pl.streams++
	return pl.lim
}

func (t *throttle) close(p peer.ID) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if pl := t.peers[p]; pl != nil {
		if pl.streams--; pl.streams <= 0 {
			delete(t.peers, p)
		}
	}
}

// wait blocks until n bytes may be sent on lim (nil: at once).
func wait(ctx context.Context, lim *rate.Limiter, n int) error {
	if lim == nil {
		return nil
	}
	return lim.WaitN(ctx, n)
}
