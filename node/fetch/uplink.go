package fetch

import (
	"sync/atomic"
	"time"
)

// uplink is what a provider knows of its upload: how many streams have
// leaves to send, and how long a leaf takes to go out.
//
// While others are served the same expert, a provider takes a request
// only if fewer than uplinkBacklog streams have leaves waiting; the others
// get BUSY at once, with the time one of those streams should take to
// end (retry), and ask a peer that is free meanwhile. A requester whose
// leaf waited in a long line would be kept from the newer holders of it,
// and leaves sent side by side by many streams all arrive late (a leaf is
// served on only once it is whole and verified).
type uplink struct {
	waiting atomic.Int32 // streams with leaves to send
	// leafTime is how long the last leaves took to write (an average),
	// in nanoseconds.
	leafTime atomic.Int64
}

// uplinkBacklog is how many streams may have leaves to send while others
// are served the same expert: enough to keep the uplink busy across a
// requester's round trip to its next request.
const uplinkBacklog = 2

// minRetry is the shortest wait a BUSY answer asks for.
const minRetry = 50 * time.Millisecond

func newUplink() *uplink { return &uplink{} }

// queue counts a stream with leaves to send until done is called, unless
// it is loaded (others are served) and uplinkBacklog streams wait.
func (u *uplink) queue(loaded bool) (done func(), ok bool) {
	if n := u.waiting.Add(1); loaded && n > uplinkBacklog {
		u.waiting.Add(-1)
		return nil, false
	}
	return func() { u.waiting.Add(-1) }, true
}

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
