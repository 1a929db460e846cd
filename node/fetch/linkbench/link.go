package linkbench

import (
	"sync"
	"time"
)

// Link is one direction of an access link: a line rate that every flow
// crossing it shares, e.g. a requester's downlink behind several proxies.
// It has no burst: bytes leave back to back at the rate, and an idle link
// earns no credit. A nil *Link has no rate limit. Safe for concurrent use.
type Link struct {
	rate float64 // bytes per second

	mu   sync.Mutex
	next time.Time // when the last byte booked so far has left
}

// NewLink returns a link of bitsPerSecond (> 0).
func NewLink(bitsPerSecond float64) *Link {
	return &Link{rate: bitsPerSecond / 8}
}

// BytesPerSecond is the link's rate; 0 for a nil link (unlimited).
func (l *Link) BytesPerSecond() float64 {
	if l == nil {
		return 0
	}
	return l.rate
}

// reserve books n bytes that are ready to leave at ready and returns when
// the last of them has left: they queue behind the bytes booked before.
func (l *Link) reserve(ready time.Time, n int) time.Time {
	if l == nil {
		return ready
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	start := ready
	if l.next.After(start) {
		start = l.next
	}
	l.next = start.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	return l.next
}
