package fetch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/internal/testutil"
	pb "github.com/expertd/expertd/proto"
)

// watchScene serves b from a provider on a host of its own, connected to
// a requester's host: the requester's fetcher, the provider and its host.
func watchScene(t *testing.T, b Blocks) (*Fetcher, *Provider, host.Host) {
	reqHost, provHost := newHost(t), newHost(t)
	prov := NewProvider(provHost, b, ProviderOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go prov.Serve(ctx)
	connect(t, reqHost, provHost)
	waitHandler(t, provHost)
	return NewFetcher(reqHost, newMem(), Options{}), prov, provHost
}

// A watch of a partial holder says what it holds, then each leaf as the
// holder stores it, and ends when it holds them all.
func TestWatchTellsEachLeafAsHeld(t *testing.T) {
	data := randomBytes(4<<20, 31)
	src := newMem()
	l := addFile(t, src, data)
	holder := partialCopy(t, src, l, func(i int) bool { return i < 2 })
	f, prov, provHost := watchScene(t, holder)
	ctx := context.Background()
	events := make(chan event, 8)
	errc := make(chan error, 1)
	go func() { errc <- f.watch(ctx, provHost.ID(), l.Root, l, events) }()
	next := func() evHave {
		t.Helper()
		select {
		case ev := <-events:
			return ev.(evHave)
		case err := <-errc:
			t.Fatalf("watch ended: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no word from the watch")
		}
		return evHave{}
	}
	if h := next(); !h.header || !slices.Equal(h.has, []bool{true, true, false, false}) {
		t.Fatalf("first word %+v, want the header with leaves 0 and 1", h)
	}
	for _, i := range []uint64{3, 2} {
		d, _ := src.GetBlock(l.Leaves[i].Cid)
		if err := holder.PutBlock(l.Leaves[i].Cid, d); err != nil {
			t.Fatal(err)
		}
		prov.Stored(l.Root, i)
		prov.Stored(l.Root, i) // told twice: said once
		h := next()
		if !slices.Equal(h.add, []uint64{i}) || h.complete != (i == 2) {
			t.Fatalf("after leaf %d stored: %+v", i, h)
		}
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("watch ended with %v, want a clean end", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not end with the last leaf")
	}
}

// A requester that stops watching frees the provider's watch, and a peer
// gets watchesPerPeer watches at most.
func TestWatchBoundedAndFreed(t *testing.T) {
	data := randomBytes(2<<20, 32)
	src := newMem()
	l := addFile(t, src, data)
	f, prov, provHost := watchScene(t, partialCopy(t, src, l, func(i int) bool { return i == 0 }))
	ctx := context.Background()
	reqHost := f.host

	watching := func() int {
		prov.haves.mu.Lock()
		defer prov.haves.mu.Unlock()
		return prov.haves.watching[reqHost.ID()]
	}
	var cancels []context.CancelFunc
	var ends []chan error
	for range watchesPerPeer {
		wctx, wcancel := context.WithCancel(ctx)
		events, end := make(chan event, 4), make(chan error, 1)
		go func() { end <- f.watch(wctx, provHost.ID(), l.Root, l, events) }()
		if _, ok := (<-events).(evHave); !ok {
			t.Fatal("no header")
		}
		cancels, ends = append(cancels, wcancel), append(ends, end)
	}
	err := f.watch(ctx, provHost.ID(), l.Root, l, make(chan event, 4))
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("watch %d: %v, want ErrBusy", watchesPerPeer+1, err)
	}
	for i, c := range cancels {
		c()
		<-ends[i]
	}
	testutil.Eventually(t, 10*time.Second, "the provider frees the watches of a requester that stopped", func() bool { return watching() == 0 })
}

// A Have that repeats a leaf, or tells nothing, is a peer's fault: the
// watch ends with ErrFrame rather than wake the scheduler for nothing.
func TestWatchRefusesHavesThatTellNothingNew(t *testing.T) {
	l := testLayout(12)
	hdr := &pb.FetchFrame{Body: &pb.FetchFrame_Header{Header: &pb.FetchHeader{Size: l.Size, Leaves: 12, Have: []byte{1, 0}}}}
	have := func(complete bool, leaves ...uint64) *pb.FetchFrame {
		return &pb.FetchFrame{Body: &pb.FetchFrame_Have{Have: &pb.Have{Leaves: leaves, Complete: complete}}}
	}
	fe := &Fetcher{opts: Options{}}
	fe.opts.defaults()
	for _, c := range []struct {
		name   string
		frames []*pb.FetchFrame
		ok     bool
	}{
		{"each leaf once, then complete", []*pb.FetchFrame{hdr, have(false, 3), have(false, 5, 11), have(true)}, true},
		{"a leaf of the header again", []*pb.FetchFrame{hdr, have(false, 0)}, false},
		{"a leaf of an earlier Have again", []*pb.FetchFrame{hdr, have(false, 3), have(false, 3)}, false},
		{"a Have that tells nothing", []*pb.FetchFrame{hdr, have(false)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			events := make(chan event, 16)
			err := fe.receiveHaves(bufio.NewReader(bytes.NewReader(response(t, c.frames...))), func() {}, peer.ID("P"), l, events)
			if c.ok && err != nil {
				t.Fatalf("receiveHaves = %v; want nil", err)
			}
			if !c.ok && !errors.Is(err, ErrFrame) {
				t.Fatalf("receiveHaves = %v; want ErrFrame", err)
			}
		})
	}
}

// FuzzWatch feeds arbitrary watch answers to the requester: it must fail
// cleanly or tell only leaves of the expert, never panic.
func FuzzWatch(f *testing.F) {
	l := testLayout(12)
	hdr := &pb.FetchFrame{Body: &pb.FetchFrame_Header{Header: &pb.FetchHeader{Size: l.Size, Leaves: 12, Have: []byte{1, 0}}}}
	have := &pb.FetchFrame{Body: &pb.FetchFrame_Have{Have: &pb.Have{Leaves: []uint64{3, 11}}}}
	done := &pb.FetchFrame{Body: &pb.FetchFrame_Have{Have: &pb.Have{Leaves: []uint64{1}, Complete: true}}}
	f.Add(response(f, hdr, have, done))
	f.Add(response(f, hdr, &pb.FetchFrame{Body: &pb.FetchFrame_Have{Have: &pb.Have{Leaves: []uint64{12}}}}))
	f.Add(response(f, &pb.FetchFrame{Body: &pb.FetchFrame_Error{Error: &pb.FetchError{Code: pb.FetchError_BUSY}}}))
	fe := &Fetcher{opts: Options{}}
	fe.opts.defaults()
	f.Fuzz(func(t *testing.T, data []byte) {
		events := make(chan event)
		bad := make(chan string, 1)
		go func() {
			defer close(bad)
			count := 0
			for ev := range events {
				h := ev.(evHave)
				if count++; count > 12+1 {
					bad <- "more events than leaves: a leaf told twice or a Have telling nothing"
				}
				if h.has != nil && len(h.has) != 12 {
					bad <- "a bitmap of the wrong length"
				}
				for _, i := range h.add {
					if i >= 12 {
						bad <- "a leaf past the last"
					}
				}
			}
		}()
		_ = fe.receiveHaves(bufio.NewReader(bytes.NewReader(data)), func() {}, peer.ID("P"), l, events)
		close(events)
		for msg := range bad {
			t.Fatal(msg)
		}
	})
}
