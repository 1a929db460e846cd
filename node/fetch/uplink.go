package fetch

import (
	"context"
	"sync/atomic"
	"time"
)

// uplink is what a provider knows of its upload: how many streams have
// leaves to send, and how long a leaf takes to go out.
//
// While others are served the same expert, a provider takes a request
// only if fewer than uplinkBacklog streams have leaves waiting (and one
// more may wait in line); the others get BUSY at once, with the time one
// of those streams should take to end (retry), and ask a peer that is free
// meanwhile. A requester whose leaf waited in a long line would be kept
// from the newer holders of it. Several streams side by side cost a leaf's
// next hop little: a requester with the outboard serves each piece on as
// it verifies (flow.go), not the leaf once whole; and they keep the uplink
// busy when some of them are slow (their requesters' downlinks shared, or
// their leaves still arriving here).
type uplink struct {
	waiting atomic.Int32 // streams with leaves to send
	// inLine is set while a stream waits for one of the uplinkBacklog to
	// end (queue); freed wakes it.
	inLine atomic.Bool
	freed  chan struct{}
	// leafTime is how long the last leaves took to write (an average),
	// in nanoseconds.
	leafTime atomic.Int64
}

// uplinkBacklog is how many streams may have leaves to send while others
// are served the same expert: enough to keep the uplink busy across a
// requester's round trip to its next request and while some streams are
// slow. Measured in deploy/bench/swarm (docs/bench/swarm.md): with leaves
// served on as they arrive, 6 gave the 50-node swarm's last fetcher
// 2.3-2.9x the floor where 2 gave 3.2-3.4x.
const uplinkBacklog = 6

// minRetry is the shortest wait a BUSY answer asks for.
const minRetry = 50 * time.Millisecond

func newUplink() *uplink { return &uplink{freed: make(chan struct{}, 1)} }

// queue counts a stream with leaves to send until done is called. When it
// is loaded (others are served) and uplinkBacklog streams have leaves to
// send, one stream may wait in line, up to a leaf's time (within
// [minRetry, maxLine]), for one of them to end: the uplink then goes on
// at once with the next request instead of idling for a refused
// requester's round trip. Others are refused (ok false).
func (u *uplink) queue(ctx context.Context, loaded bool) (done func(), ok bool) {
	done = func() {
		u.waiting.Add(-1)
		select {
		case u.freed <- struct{}{}:
		default:
		}
	}
	if n := u.waiting.Add(1); !loaded || n <= uplinkBacklog {
		return done, true
	}
	u.waiting.Add(-1)
	if !u.inLine.CompareAndSwap(false, true) {
		return nil, false
	}
	defer u.inLine.Store(false)
	limit := time.NewTimer(min(max(time.Duration(u.leafTime.Load()), minRetry), maxLine))
	defer limit.Stop()
	select { // a wake-up from before this stream came is stale
	case <-u.freed:
	default:
	}
	for {
		if n := u.waiting.Add(1); n <= uplinkBacklog {
			return done, true
		}
		u.waiting.Add(-1)
		select {
		case <-u.freed:
		case <-limit.C:
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
}

// maxLine bounds the wait in line, well within a requester's patience
// for a header (headerPatience).
const maxLine = time.Second

// wrote takes in a leaf write that took d.
func (u *uplink) wrote(d time.Duration) {
	if old := u.leafTime.Load(); old > 0 {
		d = (3*time.Duration(old) + d) / 4
	}
	u.leafTime.Store(int64(d))
}

// retry is when a refused requester may find room: a leaf's time over the
// streams sending (one of them ends about that often), within [minRetry,
// maxBusyWait].
func (u *uplink) retry() time.Duration {
	return min(max(time.Duration(u.leafTime.Load())/uplinkBacklog, minRetry), maxBusyWait)
}
