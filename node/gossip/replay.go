package gossip

import (
	"hash/maphash"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// pairRecord is what the validator remembers of a provider of an expert.
type pairRecord struct {
	at    time.Time // time of the latest announcement accepted from the topic; zero: none
	topic time.Time // when that one was accepted; zero: none
	known time.Time // when the pair was last accepted, from the topic or a catalog
}

// replayLog holds a pairRecord per pair of an expert and a provider, at
// most max of them, in 32 bytes each plus the map's slot: the pair is
// known by a 64-bit keyed hash (a collision, which a peer cannot aim for
// without the key, would only make one announcement look like a replay
// or a refresh), times by their Unix milli- or nanoseconds. It is not
// safe for concurrent use (the Service guards it with its mutex).
type replayLog struct {
	seed maphash.Seed
	max  int
	m    map[uint64]packedRecord
}

type packedRecord struct {
	at           int64 // UnixMilli: announcements carry milliseconds
	topic, known int64 // UnixNano
}

type replayKey struct {
	cid      cid.Cid
	provider peer.ID
}

func newReplayLog(max int) replayLog {
	return replayLog{seed: maphash.MakeSeed(), max: max, m: map[uint64]packedRecord{}}
}

func (l *replayLog) key(c cid.Cid, p peer.ID) uint64 {
	return maphash.Comparable(l.seed, replayKey{c, p})
}

// get returns the record of (c, p), if any.
func (l *replayLog) get(c cid.Cid, p peer.ID) (pairRecord, bool) {
	r, ok := l.m[l.key(c, p)]
	if !ok {
		return pairRecord{}, false
	}
	return pairRecord{at: fromMilli(r.at), topic: fromNano(r.topic), known: fromNano(r.known)}, true
}

// put records r for (c, p), unless the pair is new and the log holds max
// records already: then it degrades to pubsub's own dedup, and to spending
// tokens on refreshes.
func (l *replayLog) put(c cid.Cid, p peer.ID, r pairRecord) {
	k := l.key(c, p)
	if _, ok := l.m[k]; !ok && len(l.m) >= l.max {
		return
	}
	l.m[k] = packedRecord{at: toMilli(r.at), topic: toNano(r.topic), known: toNano(r.known)}
}

// expire drops the records of pairs neither announced nor known since
// limit.
func (l *replayLog) expire(limit time.Time) {
	at, nano := toMilli(limit), toNano(limit)
	for k, r := range l.m {
		if r.at < at && r.known < nano {
			delete(l.m, k)
		}
	}
}

func toMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func toNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromMilli(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
