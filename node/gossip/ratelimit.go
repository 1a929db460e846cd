package gossip

import (
	"container/list"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// RateLimit is a token bucket: Burst tokens, refilled at Rate a second,
// one spent per event. In Options, a zero field means its default and a
// negative Rate means no limit.
type RateLimit struct {
	Rate  float64 // tokens per second
	Burst int
}

func (l RateLimit) orDefault() RateLimit {
	if l.Rate == 0 {
		l.Rate = DefaultAnnounceRate
	}
	if l.Burst <= 0 {
		l.Burst = DefaultAnnounceBurst
	}
	return l
}

// limiter keeps a token bucket per peer, at most max of them: when it is
// full, the least recently used bucket is dropped. A dropped bucket, like
// one never made, is full: forgetting a peer can only let it send one more
// burst, which a peer with a fresh ID gets anyway. A nil limiter limits
// nothing. It is not safe for concurrent use (the Service guards it with
// its mutex).
type limiter struct {
	rate    float64
	burst   float64
	max     int
	buckets map[peer.ID]*list.Element
	lru     list.List // of *bucket, most recently used first
}

type bucket struct {
	id     peer.ID
	tokens float64 // as of at
	at     time.Time
}

// newLimiter returns a limiter of l keeping at most max buckets, or nil if
// l.Rate is negative.
func newLimiter(l RateLimit, max int) *limiter {
	if l.Rate < 0 {
		return nil
	}
	return &limiter{rate: l.Rate, burst: float64(l.Burst), max: max, buckets: map[peer.ID]*list.Element{}}
}

// level returns the tokens of b at now.
func (l *limiter) level(b *bucket, now time.Time) float64 {
	d := now.Sub(b.at)
	if d <= 0 {
		return b.tokens
	}
	return min(l.burst, b.tokens+d.Seconds()*l.rate)
}

// allows reports whether id has a token at now.
func (l *limiter) allows(id peer.ID, now time.Time) bool {
	if l == nil {
		return true
	}
	e, ok := l.buckets[id]
	return !ok || l.level(e.Value.(*bucket), now) >= 1
}

// take spends one of id's tokens at now; allows must have said it has one.
func (l *limiter) take(id peer.ID, now time.Time) {
	if l == nil {
		return
	}
	if e, ok := l.buckets[id]; ok {
		b := e.Value.(*bucket)
		b.tokens, b.at = max(l.level(b, now)-1, 0), now
		l.lru.MoveToFront(e)
		return
	}
	if len(l.buckets) >= l.max {
		oldest := l.lru.Back()
		delete(l.buckets, oldest.Value.(*bucket).id)
		l.lru.Remove(oldest)
	}
	l.buckets[id] = l.lru.PushFront(&bucket{id: id, tokens: l.burst - 1, at: now})
}

// prune drops the buckets full again at now, which limit nothing, and
// returns how many it dropped.
func (l *limiter) prune(now time.Time) int {
	if l == nil {
		return 0
	}
	n := 0
	for id, e := range l.buckets {
		if l.level(e.Value.(*bucket), now) >= l.burst {
			delete(l.buckets, id)
			l.lru.Remove(e)
			n++
		}
	}
	return n
}

// len returns the number of buckets held.
func (l *limiter) len() int {
	if l == nil {
		return 0
	}
	return len(l.buckets)
}
