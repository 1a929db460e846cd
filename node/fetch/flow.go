package fetch

import (
	"context"
	"fmt"
	"sync"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/node/unixfs"
)

// flows is what a node's provider and fetcher share of the experts it is
// fetching: their checked outboards and the leaves under way, each with
// the prefix of it that verified piece by piece. The provider serves such
// a leaf as it grows (a flowing leaf), and counts it among its holdings.
// It also keeps the outboards it computed of experts it holds whole.
type flows struct {
	// computing serializes the outboards computed of experts held whole,
	// so that a burst of requests reads an expert once.
	computing sync.Mutex
	mu        sync.Mutex
	roots     map[cid.Cid]*flowRoot
	// whole: outboards of experts held whole, most recent last.
	whole []wholeOutboard
	// started is called when a leaf starts to flow (its first piece
	// verified): the provider tells its watchers.
	started func(root cid.Cid, leaf uint64)
}

type wholeOutboard struct {
	root cid.Cid
	ob   []byte
}

// maxWholeOutboards bounds the outboards kept of experts held whole (up
// to 2 MiB each, for a 4 GiB expert).
const maxWholeOutboards = 8

// maxFlowLeaves bounds the leaves of one expert under way here, a leaf's
// size each: beyond it (providers that start leaves and stall), leaves are
// read whole and not served on until some are stored.
const maxFlowLeaves = 32

type flowRoot struct {
	fetches int // running fetches of the expert that have its outboard
	ob      *outboard
	leaves  map[uint64]*flowLeaf
}

// flowLeaf is a leaf under way: data[:n] verified piece by piece.
type flowLeaf struct {
	// fillers counts the requests reading the leaf into it (under
	// flows.mu): once the last ends without the leaf whole, it is given up.
	fillers int

	mu   sync.Mutex
	data []byte
	n    int
	dead bool          // given up: no more will come
	wake chan struct{} // closed when n grows or dead is set
}

func newFlows(started func(cid.Cid, uint64)) *flows {
	return &flows{roots: map[cid.Cid]*flowRoot{}, started: started}
}

// begin registers a fetch of root with its checked outboard; end undoes
// it, and once no fetch of root is left, the leaves still under way are
// dropped (their readers see them dead).
func (f *flows) begin(root cid.Cid, ob *outboard) (end func()) {
	f.mu.Lock()
	r := f.roots[root]
	if r == nil {
		r = &flowRoot{ob: ob, leaves: map[uint64]*flowLeaf{}}
		f.roots[root] = r
	}
	if r.ob == nil {
		r.ob = ob
	}
	r.fetches++
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.fetches--; r.fetches > 0 {
			return
		}
		delete(f.roots, root)
		for _, l := range r.leaves {
			l.kill()
		}
	}
}

// leaf returns leaf i of root under way; nil if there is none.
func (f *flows) leaf(root cid.Cid, i uint64) *flowLeaf {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.roots[root]; r != nil {
		return r.leaves[i]
	}
	return nil
}

// fill returns leaf i of root under way for a request that reads it,
// creating it (size bytes) when a fetch of root is registered and fewer
// than maxFlowLeaves are under way; nil otherwise. A leaf returned must
// be given back with unfill once the request's read of it ends.
func (f *flows) fill(root cid.Cid, i uint64, size int) *flowLeaf {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.roots[root]
	if r == nil {
		return nil
	}
	l := r.leaves[i]
	if l == nil && len(r.leaves) < maxFlowLeaves {
		l = &flowLeaf{data: make([]byte, size), wake: make(chan struct{})}
		r.leaves[i] = l
	}
	if l != nil {
		l.fillers++
	}
	return l
}

// unfill ends a request's read of leaf i (l, from fill). When the last
// read ends without it whole (its provider failed, went silent or sent
// bytes that do not match), the leaf is given up: its readers see it dead
// at once, rather than wait for pieces no request brings, and the next
// request of it starts it anew.
func (f *flows) unfill(root cid.Cid, i uint64, l *flowLeaf) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l.fillers--; l.fillers > 0 || l.verified() == len(l.data) {
		return
	}
	if r := f.roots[root]; r != nil && r.leaves[i] == l {
		delete(r.leaves, i)
	}
	l.kill()
}

// stored drops leaf i of root: it is in the store now (readers that hold
// it read on; it is whole).
func (f *flows) stored(root cid.Cid, i uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.roots[root]; r != nil {
		delete(r.leaves, i)
	}
}

// flowing sets in have (a FetchHeader.have bitmap) the leaves of root that
// flow: at least one piece verified.
func (f *flows) flowing(root cid.Cid, have []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.roots[root]
	if r == nil {
		return
	}
	for i, l := range r.leaves {
		if l.verified() > 0 && i/8 < uint64(len(have)) {
			have[i/8] |= 1 << (i % 8)
		}
	}
}

// outboard returns root's outboard: the one a fetch checked, or, for an
// expert held whole, the one computed from its leaves (kept for the next
// requests).
func (f *flows) outboard(layout *unixfs.Layout, b Blocks, whole bool) ([]byte, error) {
	if whole {
		f.computing.Lock()
		defer f.computing.Unlock()
	}
	f.mu.Lock()
	if r := f.roots[layout.Root]; r != nil && r.ob != nil {
		f.mu.Unlock()
		return r.ob.hashes, nil
	}
	for _, w := range f.whole {
		if w.root == layout.Root {
			f.mu.Unlock()
			return w.ob, nil
		}
	}
	f.mu.Unlock()
	if !whole {
		return nil, nil
	}
	var ob []byte
	for i, l := range layout.Leaves {
		data, err := b.GetBlock(l.Cid)
		if err != nil {
			return nil, fmt.Errorf("leaf %d: %w", i, err)
		}
		ob = appendPieceHashes(ob, data)
	}
	f.mu.Lock()
	if len(f.whole) >= maxWholeOutboards {
		f.whole = f.whole[1:]
	}
	f.whole = append(f.whole, wholeOutboard{layout.Root, ob})
	f.mu.Unlock()
	return ob, nil
}

// add appends piece p, verified, at offset off if it extends the verified
// prefix (another request may bring the same leaf: the first to reach
// an offset extends it). It reports whether the leaf started to flow.
func (l *flowLeaf) add(off int, p []byte) (started bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead || off != l.n || off+len(p) > len(l.data) {
		return false
	}
	copy(l.data[off:], p)
	l.n += len(p)
	close(l.wake)
	l.wake = make(chan struct{})
	return off == 0
}

func (l *flowLeaf) kill() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.dead {
		l.dead = true
		close(l.wake)
	}
}

func (l *flowLeaf) verified() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// errFlowDead is what a reader of a leaf gets when it was given up: its
// fetch ended, or the requests that brought it did, without it.
var errFlowDead = fmt.Errorf("%w: the leaf under way here was given up", ErrIncomplete)

// next returns the verified bytes from off on, waiting for some until ctx
// ends; the slice is not written again.
func (l *flowLeaf) next(ctx context.Context, off int) ([]byte, error) {
	for {
		l.mu.Lock()
		n, dead, wake := l.n, l.dead, l.wake
		l.mu.Unlock()
		if n > off {
			return l.data[off:n:n], nil
		}
		if dead {
			return nil, errFlowDead
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
		}
	}
}

// fetchFlow is one fetch's part in the flows: the outboard hash it
// expects (from the publisher's signed publication) and, once a provider
// sent an outboard with that hash, the outboard, which registers the fetch
// with the flows.
type fetchFlow struct {
	want  []byte
	flows *flows
	root  cid.Cid

	mu   sync.Mutex
	ob   *outboard
	off  bool   // distrusted: see distrust
	done func() // ends the registration
}

// asking reports whether requests should ask for the outboard.
func (ff *fetchFlow) asking() bool {
	if ff == nil {
		return false
	}
	ff.mu.Lock()
	defer ff.mu.Unlock()
	return ff.ob == nil && !ff.off
}

// took takes in the outboard a provider sent in its header, if the fetch
// has none yet; one that does not match the expected hash is the
// provider's error (ErrVerify).
func (ff *fetchFlow) took(layout *unixfs.Layout, ob []byte) error {
	if ff == nil || len(ob) == 0 {
		return nil
	}
	ff.mu.Lock()
	defer ff.mu.Unlock()
	if ff.ob != nil || ff.off {
		return nil
	}
	o, err := newOutboard(layout, ob, ff.want)
	if err != nil {
		return err
	}
	ff.ob, ff.done = o, ff.flows.begin(ff.root, o)
	return nil
}

// pieces returns how to read leaf idx in pieces; ok is false without an
// outboard.
func (ff *fetchFlow) pieces(layout *unixfs.Layout, idx uint64) (lp leafPieces, ok bool) {
	if ff == nil {
		return lp, false
	}
	ff.mu.Lock()
	ob, off := ff.ob, ff.off
	ff.mu.Unlock()
	size := layout.Leaves[idx].Size
	if ob == nil || off || size == 0 {
		return lp, false
	}
	return leafPieces{ob: ob, flow: ff.flows.fill(ff.root, idx, int(size)), flows: ff.flows, started: ff.flows.started, root: ff.root}, true
}

// distrust stops serving leaves as they arrive: a leaf read in pieces
// matched the outboard but not its CID, so the signed outboard hash is
// false (its publisher's error, or attack). Leaves are read whole from
// then on, and verified by their CIDs alone.
func (ff *fetchFlow) distrust() {
	if ff == nil {
		return
	}
	ff.mu.Lock()
	done := ff.done
	ff.off, ff.done = true, nil
	ff.mu.Unlock()
	if done != nil {
		done()
	}
}

// end ends the fetch's registration with the flows.
func (ff *fetchFlow) end() { ff.distrust() }
