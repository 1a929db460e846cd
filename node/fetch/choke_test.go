package fetch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/unixfs"
	pb "github.com/expertd/expertd/proto"
)

// quickChoke is a provider's options with one slot and a policy quick to
// choke: a stall of 300 ms, a turn of 300 ms.
var quickChoke = ProviderOptions{MaxStreams: 1, StallTimeout: 300 * time.Millisecond, Turn: 300 * time.Millisecond}

func serveWith(t *testing.T, b Blocks, o ProviderOptions) host.Host {
	t.Helper()
	h := newHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go NewProvider(h, b, o).Serve(ctx)
	waitHandler(t, h)
	return h
}

// slowReader asks prov for all of l and reads the answer, pausing pause
// after every leaf: it returns the leaves verified and the error frame or
// read error that ended the stream (nil: a clean end after the last leaf).
func slowReader(t *testing.T, h host.Host, prov peer.ID, l *unixfs.Layout, pause time.Duration, afterLeaf func(int)) (int, error) {
	t.Helper()
	s, err := h.NewStream(context.Background(), prov, ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := pb.WriteFrame(s, &pb.FetchRequest{Cid: l.Root.Bytes()}, nil); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(s, 16<<10)
	var frame pb.FetchFrame
	var buf []byte
	if err := pb.ReadFrame(br, &frame, maxHeaderFrame, &buf); err != nil {
		return 0, err
	}
	if frame.GetHeader() == nil {
		return 0, remoteError(frame.GetError())
	}
	leaves := 0
	for {
		err := pb.ReadFrame(br, &frame, maxBlockFrame, &buf)
		switch {
		case err == io.EOF && leaves == len(l.Leaves):
			return leaves, nil
		case err != nil:
			return leaves, err
		case frame.GetError() != nil:
			return leaves, remoteError(frame.GetError())
		}
		b := frame.GetBlock()
		if err := l.Leaves[b.GetIndex()].Verify(b.GetData()); err != nil {
			t.Fatalf("leaf %d: %v", b.GetIndex(), err)
		}
		leaves++
		if afterLeaf != nil {
			afterLeaf(leaves)
		}
		time.Sleep(pause) // the reader under test pauses; nothing to wait for
	}
}

// A holder that pauses longer than the stall limit and holds its slot
// past its turn is not choked while nobody else asks: a fetch alone is
// never cut.
func TestProviderKeepsSlowHolderNobodyWaitsFor(t *testing.T) {
	src := newMem()
	l := addFile(t, src, randomBytes(5<<20, 41))
	prov := serveWith(t, src, quickChoke)
	r := newHost(t)
	connect(t, r, prov)
	leaves, err := slowReader(t, r, prov.ID(), l, 500*time.Millisecond, nil)
	if err != nil || leaves != len(l.Leaves) {
		t.Fatalf("got %d of %d leaves, then %v; want all and a clean end", leaves, len(l.Leaves), err)
	}
}

// A holder past its turn, when another peer asks, gets the leaf under way
// and a BUSY frame saying it was choked: a clean end, not a reset.
func TestProviderChokesHolderWithBusyFrame(t *testing.T) {
	src := newMem()
	l := addFile(t, src, randomBytes(10<<20, 42))
	small := addFile(t, src, randomBytes(1000, 43))
	prov := serveWith(t, src, quickChoke)
	r, other := newHost(t), newHost(t)
	connect(t, r, prov)
	connect(t, other, prov)
	var otherErr error
	otherDone := make(chan struct{})
	leaves, err := slowReader(t, r, prov.ID(), l, 200*time.Millisecond, func(n int) {
		if n == 1 {
			go func() {
				defer close(otherDone)
				time.Sleep(quickChoke.Turn) // the other peer asks once r's turn is over
				_, otherErr = NewFetcher(other, newMem(), Options{}).Fetch(context.Background(), small.Root, []peer.ID{prov.ID()}, nil)
			}()
		}
	})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "choked") || leaves < 1 || leaves == len(l.Leaves) {
		t.Fatalf("got %d of %d leaves, then %v; want some and a BUSY frame saying choked", leaves, len(l.Leaves), err)
	}
	<-otherDone
	if otherErr != nil {
		t.Fatalf("the waiting peer's fetch: %v", otherErr)
	}
}

// A Fetcher choked mid-transfer takes it as BUSY: it asks again later for
// the leaves it lacks, and does not count the provider as failed.
func TestFetchChokedResumes(t *testing.T) {
	src := newMem()
	data := randomBytes(8<<20, 44)
	l := addFile(t, src, data)
	small := addFile(t, src, randomBytes(67_000, 45))
	o := quickChoke
	o.PeerRate = 4 << 20 // 2 s for the 8 MiB: past its turn
	prov := serveWith(t, src, o)
	a, b := newHost(t), newHost(t)
	connect(t, a, prov)
	connect(t, b, prov)
	var failed atomic.Int32
	onFail := func(cid.Cid, peer.ID, error) { failed.Add(1) }
	started := make(chan struct{})
	var once atomic.Bool
	type result struct {
		l   *unixfs.Layout
		err error
	}
	aDone := make(chan result, 1)
	dst := newMem()
	go func() {
		got, err := NewFetcher(a, dst, Options{Failed: onFail}).Fetch(context.Background(), l.Root, []peer.ID{prov.ID()}, func(p Progress) {
			if p.Leaves > 0 && once.CompareAndSwap(false, true) {
				close(started)
			}
		})
		aDone <- result{got, err}
	}()
	<-started
	time.Sleep(quickChoke.Turn) // a's turn passes while it fetches
	if _, err := NewFetcher(b, newMem(), Options{Failed: onFail}).Fetch(context.Background(), small.Root, []peer.ID{prov.ID()}, nil); err != nil {
		t.Fatalf("the waiting peer's fetch: %v", err)
	}
	select {
	case r := <-aDone:
		t.Fatalf("the 8 MiB fetch ended (%v) before the waiting peer got the one slot: it was not choked", r.err)
	default:
	}
	r := <-aDone
	if r.err != nil {
		t.Fatalf("choked fetch: %v", r.err)
	}
	if !bytes.Equal(readFile(t, dst, r.l), data) {
		t.Fatal("fetched bytes differ")
	}
	if failed.Load() != 0 {
		t.Fatalf("a choke was reported as a failed provider %d times", failed.Load())
	}
}
