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
// Every (expert, provider) pair is recorded once, in its expert's entry
// and in its provider's list of pairs, least recently seen first. A
// provider holds at most MaxPerProvider pairs: its announcements of more
// are ignored, so a peer cannot fill the view by itself. When a new
// expert or pair takes the view past MaxExperts or MaxBytes, evict frees
// room fairly among providers: it takes the least recently seen pair of
// the provider holding the most, and an expert goes when its last pair
// does. A flood of experts from a few identities thus evicts their own
// entries first, never those of peers announcing a few experts each, and
// an expert several providers hold (a popular one) is the last to go.
// Experts that ViewOptions.Keep keeps are never evicted: their pairs are
// set aside ("parked") when evict meets them, until Expire gives Keep
// another look.

// Bytes accounted for what a View holds besides its strings: an entry
// (its struct, its providers map, its slot in the view's map), a pair (its
// struct, list element and map slot) and a provider (its struct, map and
// heap slots). TestViewMemoryAccounted keeps them honest.
const (
	entryOverhead    = 448
	pairOverhead     = 176
	providerOverhead = 224
	stringOverhead   = 16 // a string header and the rounding of its bytes
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

// pair records that a provider holds an expert.
type pair struct {
	cid  cid.Cid
	prov *provider
	seen time.Time
	elem *list.Element // in prov.lru; nil while parked
}

// provider is a peer's share of the view.
type provider struct {
	id    peer.ID
	pairs int       // all its pairs
	lru   list.List // of *pair: those evict may take, least recently seen first
	index int       // in View.heavy
}

// providerHeap orders providers by how many pairs evict may take from
// them, most first.
type providerHeap []*provider

func (h providerHeap) Len() int { return len(h) }
func (h providerHeap) Less(i, j int) bool {
	if a, b := h[i].lru.Len(), h[j].lru.Len(); a != b {
		return a > b
	}
	return h[i].id < h[j].id
}
func (h providerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *providerHeap) Push(x any) {
	p := x.(*provider)
	p.index = len(*h)
	*h = append(*h, p)
}
func (h *providerHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return p
}

// addPair records that id holds c, the expert of e, as of seen. v.mu must
// be held.
func (v *View) addPair(c cid.Cid, e *entry, id peer.ID, seen time.Time) {
	pv := v.provs[id]
	if pv == nil {
		pv = &provider{id: id}
		v.provs[id] = pv
		heap.Push(&v.heavy, pv)
		v.mem += providerOverhead + int64(len(id))
	}
	p := &pair{cid: c, prov: pv, seen: seen}
	p.elem = pv.lru.PushBack(p)
	pv.pairs++
	heap.Fix(&v.heavy, pv.index)
	e.providers[pv.id] = p
	v.pairs++
	v.mem += pairOverhead
}

// refresh records that p's provider was seen holding its expert at seen.
func (v *View) refresh(p *pair, seen time.Time) {
	if !seen.After(p.seen) {
		return
	}
	p.seen = seen
	if p.elem != nil {
		p.prov.lru.MoveToBack(p.elem)
	}
}

// removePair forgets p, a pair of e, the entry of c, and e if p was its
// last. v.mu must be held.
func (v *View) removePair(c cid.Cid, e *entry, p *pair) {
	pv := p.prov
	delete(e.providers, pv.id)
	if p.elem != nil {
		pv.lru.Remove(p.elem)
		p.elem = nil
	}
	pv.pairs--
	v.pairs--
	v.mem -= pairOverhead
	if pv.pairs == 0 {
		heap.Remove(&v.heavy, pv.index)
		delete(v.provs, pv.id)
		v.mem -= providerOverhead + int64(len(pv.id))
	} else {
		heap.Fix(&v.heavy, pv.index)
	}
	if len(e.providers) == 0 {
		delete(v.entries, c)
		v.mem -= e.cost
	}
}

// park sets p aside from eviction.
func (v *View) park(p *pair) {
	p.prov.lru.Remove(p.elem)
	p.elem = nil
	heap.Fix(&v.heavy, p.prov.index)
}

// unpark makes parked pairs evictable again, before their providers'
// others, least recently seen first: if Keep lets them go now, they are
// likely what was kept longest.
func (v *View) unpark(parked []*pair) {
	slices.SortFunc(parked, func(a, b *pair) int { return b.seen.Compare(a.seen) })
	for _, p := range parked {
		p.elem = p.prov.lru.PushFront(p)
		heap.Fix(&v.heavy, p.prov.index)
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
