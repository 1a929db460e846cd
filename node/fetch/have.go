package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/unixfs"
	pb "github.com/expertd/expertd/proto"
)

// The provider's side of a watch (FetchRequest.watch): a requester learns
// what a partial holder has when it starts watching, and then each leaf as
// the holder verifies it, so it never asks a holder for what it lacks nor
// waits on a stale bitmap. A watch takes no upload slot: its frames are a
// few bytes a leaf.

const (
	// watchesPerPeer and watchesPerSlot bound the watch streams a provider
	// serves to one peer and in all (per upload slot).
	watchesPerPeer = 2
	watchesPerSlot = 16
	// maxWatch ends a watch that has not seen the expert complete: the
	// requester watches again if it still fetches.
	maxWatch = 10 * time.Minute
)

// haves tells the watch streams of an expert of the leaves this node comes
// to hold (Provider.Stored).
type haves struct {
	mu   sync.Mutex
	subs map[cid.Cid]map[*haveSub]struct{}
	// watching counts the watch streams per peer.
	watching map[peer.ID]int
	total    int
}

// haveSub is one watch stream's inbox: the leaves stored since it last
// looked, and a signal that there are some.
type haveSub struct {
	root   cid.Cid
	leaves []uint64
	ready  chan struct{}
}

func newHaves() *haves {
	return &haves{subs: map[cid.Cid]map[*haveSub]struct{}{}, watching: map[peer.ID]int{}}
}

// subscribe registers a watch of root by p, unless p or everyone has too
// many.
func (h *haves) subscribe(root cid.Cid, p peer.ID, maxTotal int) (*haveSub, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.watching[p] >= watchesPerPeer || h.total >= maxTotal {
		return nil, false
	}
	h.watching[p]++
	h.total++
	sub := &haveSub{root: root, ready: make(chan struct{}, 1)}
	if h.subs[root] == nil {
		h.subs[root] = map[*haveSub]struct{}{}
	}
	h.subs[root][sub] = struct{}{}
	return sub, true
}

func (h *haves) unsubscribe(sub *haveSub, p peer.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[sub.root], sub)
	if len(h.subs[sub.root]) == 0 {
		delete(h.subs, sub.root)
	}
	if h.watching[p]--; h.watching[p] <= 0 {
		delete(h.watching, p)
	}
	h.total--
}

// stored tells root's watchers that leaf is held.
func (h *haves) stored(root cid.Cid, leaf uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[root] {
		sub.leaves = append(sub.leaves, leaf)
		select {
		case sub.ready <- struct{}{}:
		default:
		}
	}
}

// take returns the leaves stored since the last take.
func (h *haves) take(sub *haveSub) []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := sub.leaves
	sub.leaves = nil
	return out
}

// Stored tells the provider that this node now holds leaf of root
// (verified and stored by a fetch: Options.Stored), for its watchers.
func (p *Provider) Stored(root cid.Cid, leaf uint64) {
	p.held.stored(root, leaf)
	p.flows.stored(root, leaf)
	p.haves.stored(root, leaf)
}

// watch serves a watch of layout's expert on s: the header with the
// holdings, then a Have frame for the leaves stored since, until every
// leaf is held, the requester closes its side, or maxWatch.
func (p *Provider) watch(ctx context.Context, s *servedStream, remote peer.ID, layout *unixfs.Layout) error {
	// No upload slot, and not a pending stream the slots could evict.
	p.closed(s)
	sub, ok := p.haves.subscribe(layout.Root, remote, watchesPerSlot*p.opts.MaxStreams)
	if !ok {
		return p.refuseBusy(s, BusyWatches, 0, "too many watches")
	}
	defer p.haves.unsubscribe(sub, remote)
	have, _, err := p.offerable(layout) // after subscribing: no leaf falls between
	if err != nil {
		return p.refuse(s, pb.FetchError_INTERNAL, "%v", err)
	}
	held := make([]bool, len(layout.Leaves))
	left := 0
	for i := range held {
		if held[i] = have[i/8]&(1<<(i%8)) != 0; !held[i] {
			left++
		}
	}
	hdr := &pb.FetchHeader{Size: layout.Size, Leaves: uint64(len(layout.Leaves))}
	if left > 0 {
		hdr.Have = have
	}
	var buf []byte
	if buf, err = p.writeWatch(s, &pb.FetchFrame{Body: &pb.FetchFrame_Header{Header: hdr}}, buf); err != nil || left == 0 {
		return err
	}
	// The requester closes its side when it no longer watches; it sends
	// nothing else.
	_ = s.SetReadDeadline(time.Time{}) // the request's is past
	gone := make(chan error, 1)
	go func() {
		n, err := io.Copy(io.Discard, io.LimitReader(s, 1))
		if err == nil && n > 0 {
			err = errors.New("data after a watch request")
		}
		gone <- err
	}()
	timeout := time.NewTimer(maxWatch)
	defer timeout.Stop()
	for left > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-gone:
			if err != nil {
				return fmt.Errorf("watch: %w", err)
			}
			return nil
		case <-timeout.C:
			return nil
		case <-sub.ready:
		}
		var news []uint64
		for _, i := range p.haves.take(sub) {
			if i < uint64(len(held)) && !held[i] {
				held[i] = true
				left--
				news = append(news, i)
			}
		}
		if len(news) == 0 {
			continue
		}
		slices.Sort(news)
		m := &pb.FetchFrame{Body: &pb.FetchFrame_Have{Have: &pb.Have{Leaves: news, Complete: left == 0}}}
		if buf, err = p.writeWatch(s, m, buf); err != nil {
			return err
		}
	}
	return nil
}

// writeWatch writes a watch frame within StallTimeout: a watcher that
// reads nothing loses its watch.
func (p *Provider) writeWatch(s *servedStream, m *pb.FetchFrame, buf []byte) ([]byte, error) {
	_ = s.SetWriteDeadline(time.Now().Add(p.opts.StallTimeout))
	return pb.WriteFrame(s, m, buf)
}
