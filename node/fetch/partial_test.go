package fetch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/unixfs"
	pb "github.com/expertd/expertd/proto"
)

// delayBlocks serves every block after a delay.
type delayBlocks struct {
	Blocks
	delay time.Duration
}

func (d delayBlocks) GetBlock(c cid.Cid) ([]byte, error) {
	time.Sleep(d.delay)
	return d.Blocks.GetBlock(c)
}

// partialCopy holds the nodes of l and the leaves for which keep is true,
// as a node still fetching the expert does.
func partialCopy(t testing.TB, src *memBlocks, l *unixfs.Layout, keep func(i int) bool) *memBlocks {
	t.Helper()
	b := newMem()
	for _, n := range l.Nodes {
		if err := b.PutBlock(n.Cid, n.Data); err != nil {
			t.Fatal(err)
		}
	}
	for i, leaf := range l.Leaves {
		if keep(i) {
			d, err := src.GetBlock(leaf.Cid)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.PutBlock(leaf.Cid, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b
}

// Two partial holders with complementary halves make a whole: each
// offers what it holds, the requester takes the rest from the other.
func TestFetchFromPartialHolders(t *testing.T) {
	data := randomBytes(8<<20, 21)
	src := newMem()
	l := addFile(t, src, data)
	reqHost := newHost(t)
	var servedEven, servedOdd atomic.Int64
	even := startProvider(t, reqHost, partialCopy(t, src, l, func(i int) bool { return i%2 == 0 }), &servedEven)
	odd := startProvider(t, reqHost, partialCopy(t, src, l, func(i int) bool { return i%2 == 1 }), &servedOdd)
	dst := newMem()
	got, err := NewFetcher(reqHost, dst, Options{}).Fetch(context.Background(), l.Root, ids(even, odd), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst, got), data) {
		t.Fatal("fetched bytes differ")
	}
	if servedEven.Load() != 4<<20 || servedOdd.Load() != 4<<20 {
		t.Fatalf("served %d and %d bytes, want 4 MiB each", servedEven.Load(), servedOdd.Load())
	}
	for c, n := range dst.Puts() {
		if n != 1 {
			t.Fatalf("block %s stored %d times", c, n)
		}
	}
}

// A publisher and a partial holder: the partial holder's leaves come from
// it, the publisher sends only what the partial holder lacks.
func TestFetchPrefersPartialHolder(t *testing.T) {
	data := randomBytes(8<<20, 22)
	src := newMem()
	l := addFile(t, src, data)
	reqHost := newHost(t)
	var servedFull, servedPart atomic.Int64
	full := startProvider(t, reqHost, src, &servedFull)
	part := startProvider(t, reqHost, partialCopy(t, src, l, func(i int) bool { return i < 6 }), &servedPart)
	dst := newMem()
	f := NewFetcher(reqHost, dst, Options{})
	// First from the partial holder alone: it offers its 6 leaves, the
	// fetch waits on it, then the publisher appears.
	var mu sync.Mutex
	provs := []peer.ID{part.ID()}
	got, err := f.FetchFrom(context.Background(), l.Root, func() []peer.ID {
		mu.Lock()
		defer mu.Unlock()
		return append([]peer.ID(nil), provs...)
	}, func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Leaves == 6 && len(provs) == 1 {
			provs = append(provs, full.ID())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst, got), data) {
		t.Fatal("fetched bytes differ")
	}
	if servedPart.Load() != 6<<20 || servedFull.Load() != 2<<20 {
		t.Fatalf("partial holder served %d, publisher %d bytes; want 6 MiB and 2 MiB", servedPart.Load(), servedFull.Load())
	}
}

// gatedBlocks holds every leaf read until open is closed.
type gatedBlocks struct {
	*memBlocks
	leaves map[cid.Cid]bool
	open   chan struct{}
}

func (g gatedBlocks) GetBlock(c cid.Cid) ([]byte, error) {
	if g.leaves[c] {
		<-g.open
	}
	return g.memBlocks.GetBlock(c)
}

// A provider at its stream limit answers BUSY: the requester asks again
// later instead of giving the provider up.
func TestFetchRetriesBusyProvider(t *testing.T) {
	data := randomBytes(3<<20, 23)
	src := newMem()
	l := addFile(t, src, data)
	reqHost := newHost(t)
	h := newHost(t)
	gate := gatedBlocks{memBlocks: src, leaves: wrap(src, l).leaves, open: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var busySlots atomic.Int32
	prov := NewProvider(h, gate, ProviderOptions{MaxStreams: 1, Busy: func(reason string) {
		if reason == BusySlots {
			busySlots.Add(1)
		}
	}})
	go prov.Serve(ctx)
	waitHandler(t, h)
	other := newHost(t)
	connect(t, reqHost, h)
	connect(t, other, h)
	// other takes the provider's only slot and keeps it while the gate is
	// closed (a provider waiting on its store is neither stalled nor slow).
	errc := make(chan error, 1)
	go func() {
		_, err := NewFetcher(other, newMem(), Options{}).Fetch(ctx, l.Root, ids(h), nil)
		errc <- err
	}()
	slotTaken := func(p peer.ID) func() bool {
		return func() bool {
			prov.mu.Lock()
			defer prov.mu.Unlock()
			return prov.slots.holding[p] > 0
		}
	}
	testutil.Eventually(t, 10*time.Second, "the other peer holds the only slot", slotTaken(other.ID()))
	var failed atomic.Int32
	dst := newMem()
	type result struct {
		l   *unixfs.Layout
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := NewFetcher(reqHost, dst, Options{Failed: func(_ cid.Cid, _ peer.ID, _ error) { failed.Add(1) }}).Fetch(ctx, l.Root, ids(h), nil)
		done <- result{got, err}
	}()
	testutil.Eventually(t, 10*time.Second, "the requester is refused with BUSY and waits in line", func() bool {
		prov.mu.Lock()
		defer prov.mu.Unlock()
		_, inLine := prov.slots.waiting[reqHost.ID()]
		return inLine
	})
	close(gate.open)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !bytes.Equal(readFile(t, dst, r.l), data) {
		t.Fatal("fetched bytes differ")
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if failed.Load() != 0 {
		t.Fatalf("a BUSY answer was reported as a failed provider %d times", failed.Load())
	}
	if busySlots.Load() == 0 {
		t.Error("the provider's BUSY answers were not counted as slots taken (ProviderOptions.Busy)")
	}
}

// While other peers are served, a request gets at most LoadedShare leaves.
func TestProviderLoadedShare(t *testing.T) {
	data := randomBytes(12<<20, 24)
	src := newMem()
	l := addFile(t, src, data)
	h := newHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	prov := NewProvider(h, delayBlocks{src, 20 * time.Millisecond}, ProviderOptions{LoadedShare: 2})
	go prov.Serve(ctx)
	waitHandler(t, h)
	var wg sync.WaitGroup
	for i := range 2 {
		r := newHost(t)
		connect(t, r, h)
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := newMem()
			got, err := NewFetcher(r, dst, Options{}).Fetch(ctx, l.Root, ids(h), nil)
			if err != nil {
				t.Errorf("requester %d: %v", i, err)
				return
			}
			if !bytes.Equal(readFile(t, dst, got), data) {
				t.Errorf("requester %d: fetched bytes differ", i)
			}
		}()
	}
	wg.Wait()
	// Offers: unloaded, all asked; loaded, two.
	layout, err := localLayout(ctx, src, l.Root, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	asked, _ := wanted(&pb.FetchRequest{}, uint64(len(layout.Leaves)))
	prov.mu.Lock() // h and another peer hold a slot each
	now := time.Now()
	mine, _, _ := prov.slots.Open(h.ID(), now)
	prov.slots.Ask(mine, l.Root, now)
	other, _, _ := prov.slots.Open("other", now)
	prov.slots.Ask(other, l.Root, now)
	prov.mu.Unlock()
	ranges, have, err := prov.offer(layout, asked, prov.othersServed(&servedStream{id: mine}))
	if err != nil {
		t.Fatal(err)
	}
	if countLeaves(ranges) != 2 || have != nil {
		t.Fatalf("loaded provider offers %v (have %v), want 2 leaves", ranges, have)
	}
	if ranges, _, _ = prov.offer(layout, asked, false); countLeaves(ranges) != 12 {
		t.Fatalf("unloaded provider offers %v, want all 12 leaves", ranges)
	}
}

// Partial holders that never get the rest do not hold a fetch until its
// deadline: with nothing to ask, it ends after Options.Stall.
func TestFetchStallsOnPartialHolders(t *testing.T) {
	data := randomBytes(4<<20, 25)
	src := newMem()
	l := addFile(t, src, data)
	reqHost := newHost(t)
	part := startProvider(t, reqHost, partialCopy(t, src, l, func(i int) bool { return i < 2 }), nil)
	dst := newMem()
	start := time.Now()
	_, err := NewFetcher(reqHost, dst, Options{Stall: time.Second}).Fetch(context.Background(), l.Root, ids(part), nil)
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("err = %v, want ErrIncomplete", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("gave up after %v", d)
	}
	for i, leaf := range l.Leaves { // what the holder had is kept for a later fetch
		if ok, _ := dst.HasBlock(leaf.Cid); ok != (i < 2) {
			t.Fatalf("leaf %d held: %v", i, ok)
		}
	}
}

// claimingAll starts a provider of l, connected to req, that says it holds
// every leaf but offers only the first offer leaves of each request and
// sends them after delay: a lying or trickling partial holder.
func claimingAll(t *testing.T, req host.Host, src Blocks, l *unixfs.Layout, offer int, delay time.Duration) host.Host {
	h := newHost(t)
	connect(t, req, h)
	h.SetStreamHandler(ProtocolID, func(s network.Stream) {
		defer s.Close()
		var r pb.FetchRequest
		var buf []byte
		if err := readMsg(bufio.NewReader(s), &r, maxRequestFrame, &buf); err != nil {
			return
		}
		asked := askedLeaves(&r, uint64(len(l.Leaves)))
		offered := asked[:min(offer, len(asked))]
		hdr := &pb.FetchHeader{Size: l.Size, Leaves: uint64(len(l.Leaves)), Ranges: toRanges(offered),
			Have: make([]byte, (len(l.Leaves)+7)/8)}
		for i := range l.Leaves { // "I hold every leaf"
			hdr.Have[i/8] |= 1 << (i % 8)
		}
		if !r.GetSkipNodes() {
			for _, n := range l.Nodes {
				hdr.Nodes = append(hdr.Nodes, n.Data)
			}
		}
		if _, err := pb.WriteFrame(s, &pb.FetchFrame{Body: &pb.FetchFrame_Header{Header: hdr}}, nil); err != nil {
			return
		}
		time.Sleep(delay)
		for _, i := range offered {
			d, _ := src.GetBlock(l.Leaves[i].Cid)
			if _, err := pb.WriteFrame(s, &pb.FetchFrame{Body: &pb.FetchFrame_Block{Block: &pb.Block{Index: i, Data: d}}}, nil); err != nil {
				return
			}
		}
	})
	return h
}

// A provider that claims leaves but offers none of them is dropped at its
// first answer: it cannot hold a fetch (and the full providers) waiting.
func TestFetchDropsProviderOfferingNothingItClaims(t *testing.T) {
	data := randomBytes(4<<20, 27)
	src := newMem()
	l := addFile(t, src, data)
	reqHost := newHost(t)
	liar := claimingAll(t, reqHost, src, l, 0, 0)
	full := startProvider(t, reqHost, src, nil)
	var failed []peer.ID
	dst := newMem()
	got, err := NewFetcher(reqHost, dst, Options{Failed: func(_ cid.Cid, p peer.ID, _ error) { failed = append(failed, p) }}).
		Fetch(context.Background(), l.Root, ids(liar, full), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst, got), data) {
		t.Fatal("fetched bytes differ")
	}
	if !slices.Contains(failed, liar.ID()) {
		t.Fatalf("failed providers %v: want the liar", failed)
	}
}

// A provider that claims every leaf but trickles them one slow leaf per
// request does not keep the full providers off the leaves it claims: a
// leaf that waited holderPatience goes to whoever can serve it.
func TestFetchFullProviderTakesLeavesSlowHolderClaims(t *testing.T) {
	data := randomBytes(4<<20, 28)
	src := newMem()
	l := addFile(t, src, data)
	reqHost := newHost(t)
	slow := claimingAll(t, reqHost, src, l, 1, 2*holderPatience+time.Second)
	var served atomic.Int64
	full := startProvider(t, reqHost, src, &served)
	dst := newMem()
	got, err := NewFetcher(reqHost, dst, Options{}).Fetch(context.Background(), l.Root, ids(slow, full), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst, got), data) {
		t.Fatal("fetched bytes differ")
	}
	// The slow holder got half the leaves by share and offered one: the
	// full provider served the other three, then took that one too (the
	// end game: it was idle and fast, the slow leaf seconds away).
	if served.Load() != 4<<20 {
		t.Fatalf("full provider served %d bytes, want 4 MiB", served.Load())
	}
}
