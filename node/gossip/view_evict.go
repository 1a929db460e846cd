package gossip

import (
	"container/heap"
	"container/list"
	"slices"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// How a View bounds itself.
//
// Every (expert, provider) pair is recorded once, in its expert's entry,
// counted against its provider and filed under its source: the peer that
// delivered it, that is the provider itself when it announced the expert
// directly (on the topic or in its catalog), else the peer that forwarded
// the announcement. A provider holds at most MaxPerProvider pairs: its
// announcements of more are ignored, so a peer cannot fill the view by
// itself. When a new expert or pair takes the view past MaxExperts or
// MaxBytes, evict frees room fairly among sources: it takes the least
// recently seen pair of the source holding the most, and an expert goes
// when its last pair does. A flood from a few identities, or from many
// made up and sent over one connection, thus evicts its own entries
// first, never those of peers announcing a few experts each, and an
// expert several providers hold (a popular one) is the last to go.
// Experts that ViewOptions.Keep keeps are never evicted: their pairs are
// set aside ("parked") when evict meets them, until Expire gives Keep
// another look.

// Bytes accounted for what a View holds besides its strings: an entry
// (its struct, its providers map, its slot in the view's map), a pair (its
// struct, list element and map slot) and a peer's share (its struct, map
// and heap slots). TestViewMemoryAccounted keeps them honest.
const (
	entryOverhead  = 448
	pairOverhead   = 176
	shareOverhead  = 224
	stringOverhead = 16 // a string header and the rounding of its bytes
)

// entryCost is the memory the view accounts for an entry holding a.
func entryCost(a *Announcement) int64 {
	n := entryOverhead + a.CID.ByteLen() + len(a.Name) + len(a.PeftType) + len(a.BaseModel) +
		len(a.Publisher) + len(a.Provider) + len(a.Envelope) + 6*stringOverhead
	for _, m := range a.TargetModules {
		n += len(m) + stringOverhead + 8 // its slot in the slice, rounding
	}
	return int64(n)
}

// pair records that a provider holds an expert.
type pair struct {
	cid  cid.Cid
	prov *share // the provider: MaxPerProvider counts its pairs
	src  *share // who delivered it: evict is fair among sources
	seen time.Time
	elem *list.Element // in src.lru; nil while parked
}

// share is a peer's share of the view, as a provider or as a source.
type share struct {
	id    peer.ID
	pairs int
	lru   list.List // sources: the pairs evict may take, least recently seen first
	index int       // sources: in View.heavy
}

// sourceHeap orders sources by how many pairs evict may take from them,
// most first.
type sourceHeap []*share

func (h sourceHeap) Len() int { return len(h) }
func (h sourceHeap) Less(i, j int) bool {
	if a, b := h[i].lru.Len(), h[j].lru.Len(); a != b {
		return a > b
	}
	return h[i].id < h[j].id
}
func (h sourceHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *sourceHeap) Push(x any) {
	s := x.(*share)
	s.index = len(*h)
	*h = append(*h, s)
}
func (h *sourceHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return s
}

// admits reports whether p is recorded holding c and, if not, whether an
// announcement of it by p would be, as far as MaxPerProvider goes.
func (v *View) admits(c cid.Cid, p peer.ID) (known, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e := v.entries[c]; e != nil && e.providers[p] != nil {
		return true, true
	}
	pv := v.provs[p]
	return false, pv == nil || pv.pairs < v.maxProv
}

// shareOf returns id's share in m, made if need be. v.mu must be held.
func (v *View) shareOf(m map[peer.ID]*share, id peer.ID, source bool) *share {
	s := m[id]
	if s == nil {
		s = &share{id: id}
		m[id] = s
		v.mem += shareOverhead + int64(len(id))
		if source {
			heap.Push(&v.heavy, s)
		}
	}
	return s
}

// unshare drops one pair from s, a share in m, and s if it was its last.
// v.mu must be held.
func (v *View) unshare(m map[peer.ID]*share, s *share, source bool) {
	if s.pairs--; s.pairs > 0 {
		if source {
			heap.Fix(&v.heavy, s.index)
		}
		return
	}
	delete(m, s.id)
	v.mem -= shareOverhead + int64(len(s.id))
	if source {
		heap.Remove(&v.heavy, s.index)
	}
}

// addPair records that id, delivered by src, holds c, the expert of e, as
// of seen. v.mu must be held.
func (v *View) addPair(c cid.Cid, e *entry, id, src peer.ID, seen time.Time) {
	pv := v.shareOf(v.provs, id, false)
	pv.pairs++
	p := &pair{cid: c, prov: pv, seen: seen}
	v.file(p, src)
	e.providers[pv.id] = p
	v.pairs++
	v.mem += pairOverhead
}

// file puts p under src's share. v.mu must be held.
func (v *View) file(p *pair, src peer.ID) {
	s := v.shareOf(v.srcs, src, true)
	s.pairs++
	p.src = s
	p.elem = s.lru.PushBack(p)
	heap.Fix(&v.heavy, s.index)
}

// refresh records that p's provider was seen holding its expert at seen,
// as delivered by src: a pair its provider delivers itself is filed under
// it from then on.
func (v *View) refresh(p *pair, src peer.ID, seen time.Time) {
	if src == p.prov.id && p.src.id != src {
		v.unfile(p)
		v.file(p, src)
	}
	if !seen.After(p.seen) {
		return
	}
	p.seen = seen
	if p.elem != nil {
		p.src.lru.MoveToBack(p.elem)
	}
}

// unfile takes p from its source's share. v.mu must be held.
func (v *View) unfile(p *pair) {
	if p.elem != nil {
		p.src.lru.Remove(p.elem)
		p.elem = nil
	}
	v.unshare(v.srcs, p.src, true)
	p.src = nil
}

// removePair forgets p, a pair of e, the entry of c, and e if p was its
// last. v.mu must be held.
func (v *View) removePair(c cid.Cid, e *entry, p *pair) {
	delete(e.providers, p.prov.id)
	v.unfile(p)
	v.unshare(v.provs, p.prov, false)
	v.pairs--
	v.mem -= pairOverhead
	if len(e.providers) == 0 {
		delete(v.entries, c)
		v.mem -= e.cost
	}
}

// park sets p aside from eviction.
func (v *View) park(p *pair) {
	p.src.lru.Remove(p.elem)
	p.elem = nil
	heap.Fix(&v.heavy, p.src.index)
}

// unpark makes parked pairs evictable again, before their sources'
// others, least recently seen first: if Keep lets them go now, they are
// likely what was kept longest.
func (v *View) unpark(parked []*pair) {
	slices.SortFunc(parked, func(a, b *pair) int { return b.seen.Compare(a.seen) })
	for _, p := range parked {
		p.elem = p.src.lru.PushFront(p)
		heap.Fix(&v.heavy, p.src.index)
	}
}

// over reports whether the view is past one of its bounds. v.mu must be
// held.
func (v *View) over() bool { return len(v.entries) > v.max || v.mem > v.maxMem }

// evict frees room until the view is within its bounds, and reports
// whether it is: it fails only when every pair left belongs to an expert
// Keep keeps. v.mu must be held.
func (v *View) evict() bool {
	for v.over() {
		if len(v.heavy) == 0 || v.heavy[0].lru.Len() == 0 {
			return false
		}
		p := v.heavy[0].lru.Front().Value.(*pair)
		e := v.entries[p.cid]
		if v.keep != nil && v.keep(peek(e)) {
			v.park(p)
			continue
		}
		v.removePair(p.cid, e, p)
		v.evicted.Add(1)
	}
	return true
}
