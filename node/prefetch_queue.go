package node

import (
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
)

// The prefetch queue: which expert matching inference.want is fetched next.
// Anyone can announce experts that match a want rule, so what waits is
// bounded (prefetchQueueMax in all, prefetchPerSource per publisher or
// provider), deduplicated, and taken best first: experts signed by a
// publisher trust.publishers lists, then signed ones, then claims; among
// those, whoever's prefetches failed least, then the newest. One source's
// experts are fetched one at a time, so that a source whose providers
// never answer holds one worker, never all. A prefetch that fails is not
// tried again for prefetchCooldown. The queue does no I/O: the workers in
// prefetch.go fetch what it hands them and report back.
const (
	prefetchQueueMax  = 256
	prefetchPerSource = 16
	prefetchCooldown  = 10 * time.Minute
	// prefetchMemory bounds the failures remembered, per expert and per
	// source.
	prefetchMemory = 4096
)

// Ranks of prefetch candidates, best last.
const (
	rankClaim  = iota // unsigned metadata: a provider's claim
	rankSigned        // a verified publication
	rankListed        // a publication by a publisher trust.publishers lists
)

// prefetchItem is an expert waiting to be prefetched.
type prefetchItem struct {
	cid cid.Cid
	// source is whose word the expert is: its publisher if signed, else
	// its provider (an unsigned claim may name anyone as publisher).
	source string
	rank   int
	seq    uint64 // arrival order: higher is newer
}

// prefetchQueue is safe for concurrent use.
type prefetchQueue struct {
	mu       sync.Mutex
	waiting  []prefetchItem
	busy     map[cid.Cid]bool // waiting or running
	sources  map[string]int   // items waiting per source
	running  map[string]bool  // sources with an item running
	failed   map[cid.Cid]time.Time
	failures map[string]int // failed prefetches per source
	seq      uint64
	dropped  bool          // an item was turned away: rescan the view when idle
	wake     chan struct{} // signalled when an item may be ready
}

func newPrefetchQueue() *prefetchQueue {
	return &prefetchQueue{
		busy: map[cid.Cid]bool{}, sources: map[string]int{}, running: map[string]bool{}, failed: map[cid.Cid]time.Time{},
		failures: map[string]int{}, wake: make(chan struct{}, 1),
	}
}

// better reports whether a should be prefetched before b. q.mu must be
// held.
func (q *prefetchQueue) better(a, b prefetchItem) bool {
	if a.rank != b.rank {
		return a.rank > b.rank
	}
	if fa, fb := q.failures[a.source], q.failures[b.source]; fa != fb {
		return fa < fb
	}
	return a.seq > b.seq
}

// push queues it at now, unless it is waiting or running already, failed
// within prefetchCooldown, or worse than all that waits while the queue
// (or its source's share) is full; it reports whether it was queued. An
// item turned away for room, or pushed out by a better one, is remembered
// as dropped: the caller rescans the view when the queue is idle.
func (q *prefetchQueue) push(it prefetchItem, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.busy[it.cid] || q.failedAt(it.cid, now) {
		return false
	}
	q.seq++
	it.seq = q.seq
	if q.sources[it.source] >= prefetchPerSource {
		if !q.replaceWorst(it, func(w prefetchItem) bool { return w.source == it.source }) {
			q.dropped = true
			return false
		}
	} else if len(q.waiting) >= prefetchQueueMax {
		if !q.replaceWorst(it, func(prefetchItem) bool { return true }) {
			q.dropped = true
			return false
		}
	} else {
		q.add(it)
	}
	q.signal()
	return true
}

// signal wakes a worker waiting for an item.
func (q *prefetchQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// replaceWorst puts it in the place of the worst waiting item among those
// in, if it is better. q.mu must be held.
func (q *prefetchQueue) replaceWorst(it prefetchItem, in func(prefetchItem) bool) bool {
	worst := -1
	for i, w := range q.waiting {
		if in(w) && (worst < 0 || q.better(q.waiting[worst], w)) {
			worst = i
		}
	}
	if worst < 0 || !q.better(it, q.waiting[worst]) {
		return false
	}
	q.remove(worst)
	q.add(it)
	q.dropped = true
	return true
}

func (q *prefetchQueue) add(it prefetchItem) {
	q.waiting = append(q.waiting, it)
	q.busy[it.cid] = true
	q.sources[it.source]++
}

// remove takes waiting item i out; it stays busy only if running.
func (q *prefetchQueue) remove(i int) prefetchItem {
	it := q.waiting[i]
	q.waiting[i] = q.waiting[len(q.waiting)-1]
	q.waiting = q.waiting[:len(q.waiting)-1]
	delete(q.busy, it.cid)
	if q.sources[it.source]--; q.sources[it.source] == 0 {
		delete(q.sources, it.source)
	}
	return it
}

// pop hands out the best waiting item of a source with none running; it
// is running until done.
func (q *prefetchQueue) pop() (prefetchItem, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	best := -1
	for i, it := range q.waiting {
		if !q.running[it.source] && (best < 0 || q.better(it, q.waiting[best])) {
			best = i
		}
	}
	if best < 0 {
		return prefetchItem{}, false
	}
	it := q.remove(best)
	q.busy[it.cid] = true
	q.running[it.source] = true
	return it, true
}

// done ends the run of it at now: a failure keeps it from being tried
// again for prefetchCooldown and counts against its source; a success
// clears its source's failures.
func (q *prefetchQueue) done(it prefetchItem, ok bool, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.busy, it.cid)
	delete(q.running, it.source)
	q.signal() // its source's next may go
	if ok {
		delete(q.failures, it.source)
		delete(q.failed, it.cid)
		return
	}
	if len(q.failed) >= prefetchMemory { // forget the expired, and an eighth
		for c, until := range q.failed {
			if !now.Before(until) || len(q.failed) > prefetchMemory*7/8 {
				delete(q.failed, c)
			}
		}
	}
	q.failed[it.cid] = now.Add(prefetchCooldown)
	if _, ok := q.failures[it.source]; ok || len(q.failures) < prefetchMemory {
		q.failures[it.source]++
	}
}

// holds reports whether c waits or is running.
func (q *prefetchQueue) holds(c cid.Cid) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.busy[c]
}

func (q *prefetchQueue) failedAt(c cid.Cid, now time.Time) bool {
	until, ok := q.failed[c]
	return ok && now.Before(until)
}

// idle reports whether nothing waits and, if so, whether an item was
// dropped since the last time it said so.
func (q *prefetchQueue) idle() (idle, dropped bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiting) > 0 {
		return false, false
	}
	dropped, q.dropped = q.dropped, false
	return true, dropped
}

// len returns the number of items waiting.
func (q *prefetchQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting)
}
