package fetch

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestFetchShareOfProviderFailingBeforeLayout: one provider does not have
// the expert and says so before the other's header arrives; the other
// holds everything, so the fetch must complete.
func TestFetchShareOfProviderFailingBeforeLayout(t *testing.T) {
	data := randomBytes(4<<20, 11)
	src := newMem()
	l := addFile(t, src, data)
	reqHost := newHost(t)
	pGood := startProvider(t, reqHost, &slowBlocks{memBlocks: src, delay: 200 * time.Millisecond, leaves: map[cid.Cid]bool{l.Root: true}}, nil)
	pEmpty := startProvider(t, reqHost, newMem(), nil)
	dst := newMem()
	got, err := NewFetcher(reqHost, dst, Options{}).Fetch(context.Background(), l.Root, []peer.ID{pGood.ID(), pEmpty.ID()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst, got), data) {
		t.Fatal("fetched bytes differ")
	}
}

// scriptBlocks delays every leaf read and fails after failAt leaf reads.
type scriptBlocks struct {
	*memBlocks
	leaves map[cid.Cid]bool
	delay  time.Duration
	failAt int
	mu     sync.Mutex
	n      int
}

func (s *scriptBlocks) GetBlock(c cid.Cid) ([]byte, error) {
	if !s.leaves[c] {
		return s.memBlocks.GetBlock(c)
	}
	time.Sleep(s.delay)
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	if s.failAt >= 0 && n > s.failAt {
		return nil, context.DeadlineExceeded
	}
	return s.memBlocks.GetBlock(c)
}

// TestFetchLeftoversOfTwoFailedProviders: two providers fail mid-share,
// the later one holding lower leaves; the third must get all their
// leftovers in one valid (ascending) request.
func TestFetchLeftoversOfTwoFailedProviders(t *testing.T) {
	data := randomBytes(9<<20, 12)
	src := newMem()
	l := addFile(t, src, data)
	leaves := wrap(src, l).leaves
	reqHost := newHost(t)
	pA := startProvider(t, reqHost, &scriptBlocks{memBlocks: src, leaves: leaves, delay: 100 * time.Millisecond, failAt: 2}, nil)  // leaves 0-2: fails at ~300 ms
	pB := startProvider(t, reqHost, &scriptBlocks{memBlocks: src, leaves: leaves, failAt: 1}, nil)                                 // leaves 3-5: fails at once
	pC := startProvider(t, reqHost, &scriptBlocks{memBlocks: src, leaves: leaves, delay: 400 * time.Millisecond, failAt: -1}, nil) // leaves 6-8: busy 1.2 s
	dst := newMem()
	got, err := NewFetcher(reqHost, dst, Options{}).Fetch(context.Background(), l.Root, []peer.ID{pA.ID(), pB.ID(), pC.ID()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst, got), data) {
		t.Fatal("fetched bytes differ")
	}
}

// turnsSlow serves its first fast leaves quickly, then slowly.
type turnsSlow struct {
	*memBlocks
	leaves     map[cid.Cid]bool
	fast       int
	mu         sync.Mutex
	n          int
	quick, lag time.Duration
}

func (s *turnsSlow) GetBlock(c cid.Cid) ([]byte, error) {
	if s.leaves[c] {
		s.mu.Lock()
		s.n++
		n := s.n
		s.mu.Unlock()
		if n <= s.fast {
			time.Sleep(s.quick)
		} else {
			time.Sleep(s.lag)
		}
	}
	return s.memBlocks.GetBlock(c)
}

// TestFetchStolenTailAssignedTwice: the thief turns slow after stealing;
// when the victim reaches its lowered limit, the stolen tail must stay the
// thief's and not be handed out again. On the virtual clock
// (simProviders), so that only the stores' delays make a provider slow.
func TestFetchStolenTailAssignedTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data := randomBytes(12<<20, 13)
		src := newMem()
		l := addFile(t, src, data)
		leaves := wrap(src, l).leaves
		var slowServed, thiefServed atomic.Int64
		slow := &slowBlocks{memBlocks: src, delay: 300 * time.Millisecond, leaves: leaves}
		thief := &turnsSlow{memBlocks: src, leaves: leaves, fast: 6, quick: 10 * time.Millisecond, lag: 600 * time.Millisecond}
		reqHost, provs := simProviders(t, []Blocks{slow, thief}, []*atomic.Int64{&slowServed, &thiefServed})
		dst := newMem()
		got, err := NewFetcher(reqHost, dst, Options{}).Fetch(context.Background(), l.Root, ids(provs...), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readFile(t, dst, got), data) {
			t.Fatal("fetched bytes differ")
		}
		if total := slowServed.Load() + thiefServed.Load(); total != int64(len(data)) {
			t.Errorf("providers sent %d bytes (slow %d, thief %d) for a %d-byte expert", total, slowServed.Load(), thiefServed.Load(), len(data))
		}
		// The bubble's clock stops when this returns: let the stores end
		// their sleeps (the providers of cut requests are still in them).
		time.Sleep(time.Second)
	})
}
