package node

import (
	"fmt"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func qcid(i int) cid.Cid {
	h, err := mh.Sum(fmt.Appendf(nil, "prefetch %d", i), mh.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.DagProtobuf, h)
}

// popAll takes every item, each done at once.
func popAll(q *prefetchQueue) []cid.Cid {
	var out []cid.Cid
	for {
		it, ok := q.pop()
		if !ok {
			return out
		}
		q.done(it, true, time.Now())
		out = append(out, it.cid)
	}
}

// TestPrefetchQueueOrder: listed publishers' experts first, then signed
// ones, then claims; within a rank, sources whose prefetches failed less,
// then the newest.
func TestPrefetchQueueOrder(t *testing.T) {
	q := newPrefetchQueue()
	now := time.Unix(1_750_000_000, 0)
	q.push(prefetchItem{cid: qcid(1), source: "claimer", rank: rankClaim}, now)
	q.push(prefetchItem{cid: qcid(2), source: "pub", rank: rankSigned}, now)
	q.push(prefetchItem{cid: qcid(3), source: "pub", rank: rankSigned}, now)
	q.push(prefetchItem{cid: qcid(4), source: "trusted", rank: rankListed}, now)
	q.push(prefetchItem{cid: qcid(5), source: "bad", rank: rankSigned}, now)
	q.done(prefetchItem{cid: qcid(100), source: "bad"}, false, now) // bad failed once
	want := []cid.Cid{qcid(4), qcid(3), qcid(2), qcid(5), qcid(1)}
	got := popAll(q)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// TestPrefetchQueueOneAtATime: while an item of a source runs, the next
// item goes to another source, however much better the first source's
// items rank; done lets the source's next go.
func TestPrefetchQueueOneAtATime(t *testing.T) {
	q := newPrefetchQueue()
	now := time.Unix(1_750_000_000, 0)
	for i := range 3 {
		q.push(prefetchItem{cid: qcid(i), source: "silent", rank: rankListed}, now)
	}
	q.push(prefetchItem{cid: qcid(10), source: "honest", rank: rankClaim}, now)
	first, _ := q.pop()
	if first.source != "silent" {
		t.Fatalf("first %+v", first)
	}
	if next, ok := q.pop(); !ok || next.cid != qcid(10) {
		t.Fatalf("second worker got %+v, %v; want the other source's", next, ok)
	}
	if it, ok := q.pop(); ok {
		t.Fatalf("a third item of running sources: %+v", it)
	}
	<-q.wake // pushes signalled
	q.done(first, false, now)
	select {
	case <-q.wake:
	default:
		t.Fatal("done did not wake a worker")
	}
	if it, ok := q.pop(); !ok || it.source != "silent" {
		t.Fatalf("after done: %+v, %v", it, ok)
	}
}

// TestPrefetchQueueDedupAndCooldown: an expert waiting or running is not
// queued again; one that failed is not queued again for prefetchCooldown;
// one that succeeded may be.
func TestPrefetchQueueDedupAndCooldown(t *testing.T) {
	q := newPrefetchQueue()
	now := time.Unix(1_750_000_000, 0)
	it := prefetchItem{cid: qcid(1), source: "p", rank: rankSigned}
	if !q.push(it, now) || q.push(it, now) {
		t.Fatal("a waiting expert queued twice")
	}
	got, _ := q.pop()
	if !q.holds(it.cid) || q.push(it, now) {
		t.Fatal("a running expert not held, or queued again")
	}
	q.done(got, false, now)
	if q.holds(it.cid) || q.push(it, now.Add(prefetchCooldown-time.Second)) {
		t.Fatal("a failed expert queued again within the cooldown")
	}
	if !q.push(it, now.Add(prefetchCooldown)) {
		t.Fatal("a failed expert refused after the cooldown")
	}
	got, _ = q.pop()
	q.done(got, true, now)
	if q.failures["p"] != 0 || !q.push(it, now) {
		t.Fatal("success: failures kept, or expert refused")
	}
}

// TestPrefetchQueueBounds: a source holds at most prefetchPerSource items,
// its newest; the queue at most prefetchQueueMax, the best; what is turned
// away is reported once the queue is idle; the failures remembered stay
// bounded.
func TestPrefetchQueueBounds(t *testing.T) {
	q := newPrefetchQueue()
	now := time.Unix(1_750_000_000, 0)
	for i := range 3 * prefetchPerSource {
		q.push(prefetchItem{cid: qcid(i), source: "flood", rank: rankSigned}, now)
	}
	if n := q.len(); n != prefetchPerSource {
		t.Fatalf("one source holds %d items, bound %d", n, prefetchPerSource)
	}
	it, _ := q.pop()
	if it.cid != qcid(3*prefetchPerSource-1) {
		t.Fatal("the source's newest is not first")
	}
	q.done(it, true, now)
	if idle, _ := q.idle(); idle {
		t.Fatal("idle with items waiting")
	}
	popAll(q)
	if idle, dropped := q.idle(); !idle || !dropped {
		t.Fatalf("idle %v, dropped %v: want both", idle, dropped)
	}
	if _, dropped := q.idle(); dropped {
		t.Fatal("dropped reported twice")
	}

	for i := range 2 * prefetchQueueMax {
		q.push(prefetchItem{cid: qcid(1000 + i), source: fmt.Sprint("s", i), rank: rankClaim}, now)
	}
	if n := q.len(); n != prefetchQueueMax {
		t.Fatalf("queue holds %d, bound %d", n, prefetchQueueMax)
	}
	if !q.push(prefetchItem{cid: qcid(1), source: "pub", rank: rankListed}, now) {
		t.Fatal("a better item refused by a full queue")
	}
	if it, _ := q.pop(); it.cid != qcid(1) {
		t.Fatal("the best item is not first")
	}
	for i := range 2 * prefetchMemory {
		q.done(prefetchItem{cid: qcid(5000 + i), source: fmt.Sprint("f", i)}, false, now)
	}
	if len(q.failed) > prefetchMemory || len(q.failures) > prefetchMemory {
		t.Fatalf("remembers %d failed experts and %d sources", len(q.failed), len(q.failures))
	}
}
