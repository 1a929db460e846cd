package gossip

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Defaults of a View.
const (
	DefaultTTL        = 30 * time.Minute
	DefaultMaxExperts = 100_000
	// DefaultMaxViewBytes bounds the memory of a view's entries: some
	// 12,000 signed experts of typical metadata, or 1,000 of the largest an
	// announcement can carry.
	DefaultMaxViewBytes = 16 << 20
	// DefaultMaxPerProvider bounds the experts one provider holds in a
	// view: a peer with more is seen holding the first ones only.
	DefaultMaxPerProvider = 1_000
	// subscriberBuffer is the channel capacity of View.Subscribe.
	subscriberBuffer = 64
)

// View is what a node knows of the swarm: for each expert, the
// announcement whose metadata it believes (see Add) and the peers that
// announced holding it, each with when it was last seen. A provider not
// seen for the TTL is forgotten, and an expert with no provider left with
// it.
//
// A view is bounded (see ViewOptions): in experts, in the memory of their
// entries and in experts per provider. When it is full, it evicts rather
// than refuse what is new (see evict). It is safe for concurrent use.
type View struct {
	ttl     time.Duration
	max     int
	maxMem  int64
	maxProv int
	keep    func(Entry) bool
	now     func() time.Time
	prefer  map[peer.ID]bool // publishers whose publications win

	mu      sync.Mutex
	entries map[cid.Cid]*entry
	provs   map[peer.ID]*share // pairs per provider
	srcs    map[peer.ID]*share // pairs per source
	heavy   sourceHeap         // sources by evictable pairs, most first
	mem     int64              // bytes accounted for entries and pairs
	pairs   int
	subs    map[*subscriber]struct{}

	dropped atomic.Uint64 // notifications lost to full subscriber channels
	full    atomic.Uint64 // experts refused: nothing evictable left
	capped  atomic.Uint64 // pairs refused: their provider held MaxPerProvider
	evicted atomic.Uint64 // pairs evicted to make room
}

type entry struct {
	ann       Announcement // the announcement whose metadata the view holds
	signed    time.Time    // when ann's verified publication was signed; zero: unsigned
	providers map[peer.ID]*pair
	cost      int64 // bytes accounted for ann
}

type subscriber struct {
	ch chan cid.Cid
}

// ViewOptions bounds a View. A zero field means its default.
type ViewOptions struct {
	// TTL: providers not seen for this long are forgotten, and older
	// announcements ignored (default DefaultTTL).
	TTL time.Duration
	// MaxExperts bounds the experts held (default DefaultMaxExperts).
	MaxExperts int
	// MaxBytes bounds the memory of the entries held, as the view
	// accounts for it: their strings, target modules, envelopes and
	// providers plus a fixed overhead each (default DefaultMaxViewBytes).
	MaxBytes int64
	// MaxPerProvider bounds the experts one provider is recorded as
	// holding; its announcements of more are ignored (default
	// DefaultMaxPerProvider).
	MaxPerProvider int
	// Keep, if set, names the experts the view never evicts: say those
	// the node stores, trusts or wants. It is called with the view locked,
	// on an Entry without Providers that shares memory with the view: it
	// must be quick, must not keep or modify the entry's slices and must
	// not call the View. An expert it keeps still expires with its
	// providers.
	Keep func(Entry) bool
	// Prefer: publications by these publishers replace others' (see Add).
	Prefer []peer.ID
}

// Entry is an expert as the view knows it.
type Entry struct {
	// Announcement is the announcement whose metadata the view holds (see
	// View.Add). Its Envelope is the publication of that metadata when
	// Signed.
	Announcement
	// Signed: the metadata, Publisher included, come from a publication
	// whose publisher's signature the view verified. Otherwise they are a
	// provider's unverified claim.
	Signed    bool
	Providers []ProviderInfo // most recently seen first
}

// ProviderInfo is a peer that holds an expert.
type ProviderInfo struct {
	ID       peer.ID
	LastSeen time.Time
}

// Filter selects experts in View.List and View.Page. Its zero value
// selects all.
type Filter struct {
	BaseModel string // equal, ignoring case
	PeftType  string // equal, ignoring case
	Name      string // substring, ignoring case
}

// matcher returns f as a predicate on announcements.
func (f Filter) matcher() func(a *Announcement) bool {
	name := strings.ToLower(f.Name)
	return func(a *Announcement) bool {
		return (f.BaseModel == "" || strings.EqualFold(a.BaseModel, f.BaseModel)) &&
			(f.PeftType == "" || strings.EqualFold(a.PeftType, f.PeftType)) &&
			(name == "" || strings.Contains(strings.ToLower(a.Name), name))
	}
}

// NewView returns an empty view bounded by o.
func NewView(o ViewOptions) *View {
	v := &View{
		ttl:     cmp.Or(max(o.TTL, 0), DefaultTTL),
		max:     cmp.Or(max(o.MaxExperts, 0), DefaultMaxExperts),
		maxMem:  cmp.Or(max(o.MaxBytes, 0), DefaultMaxViewBytes),
		maxProv: cmp.Or(max(o.MaxPerProvider, 0), DefaultMaxPerProvider),
		keep:    o.Keep,
		now:     time.Now,
		entries: map[cid.Cid]*entry{},
		provs:   map[peer.ID]*share{},
		srcs:    map[peer.ID]*share{},
		subs:    map[*subscriber]struct{}{},
	}
	for _, p := range o.Prefer {
		if v.prefer == nil {
			v.prefer = map[peer.ID]bool{}
		}
		v.prefer[p] = true
	}
	return v
}

// Add records a: a.Provider holds a.CID as of a.Time (or now, if a.Time
// is later), and a's metadata may replace the expert's. Metadata from a
// verified publication (a with an Envelope) is preferred to unsigned
// claims: an unsigned announcement never replaces signed metadata, and a
// signed one always replaces unsigned metadata. Between publications, one
// by a preferred publisher (ViewOptions.Prefer) replaces one by another;
// otherwise the publication held is kept, unless its own publisher signed
// the new one later. Among unsigned announcements, and among announcements
// of the same publication, the latest wins.
//
// Add reports whether the expert is new to the view; if so, subscribers
// are told. It ignores invalid announcements, those whose envelope does
// not verify or differs from them, those older than the TTL, those of a
// provider that holds MaxPerProvider experts already, and new experts
// when the view is full of experts it may not evict.
func (v *View) Add(a Announcement) bool {
	if a.Validate() != nil {
		return false
	}
	signed, err := checkPublication(a)
	if err != nil {
		return false
	}
	return v.add(checked{a, signed}, a.Provider)
}

// add is Add of an announcement already checked, delivered by src: its
// provider, or the peer that forwarded it on the topic.
func (v *View) add(c checked, src peer.ID) bool {
	a := c.Announcement
	now := v.now()
	seen := a.Time
	if seen.After(now) {
		seen = now
	}
	if seen.Before(now.Add(-v.ttl)) {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.entries[a.CID]
	if e != nil && v.expireEntry(a.CID, e, now) {
		e = nil
	}
	if e != nil {
		if p := e.providers[a.Provider]; p != nil {
			v.refresh(p, src, seen)
			if v.outranks(c, e) {
				v.setAnn(e, c)
				v.fit(a.CID, e) // the new metadata may be larger
			}
			return false
		}
	}
	if pv := v.provs[a.Provider]; pv != nil && pv.pairs >= v.maxProv {
		v.capped.Add(1)
		return false
	}
	isNew := e == nil
	if isNew {
		e = &entry{providers: map[peer.ID]*pair{}}
		v.entries[a.CID] = e
		v.setAnn(e, c)
	} else if v.outranks(c, e) {
		v.setAnn(e, c)
	}
	v.addPair(a.CID, e, a.Provider, src, seen)
	if !v.fit(a.CID, e) {
		return false
	}
	if isNew {
		for s := range v.subs {
			select {
			case s.ch <- a.CID:
			default:
				v.dropped.Add(1)
			}
		}
	}
	return isNew
}

// fit evicts until the view is within its bounds, after e (the entry of
// c) grew. If nothing is left to evict, e's newest pair goes, and e with
// it if that was its last. fit reports whether e is still held. v.mu must
// be held.
func (v *View) fit(c cid.Cid, e *entry) bool {
	if v.evict() {
		return v.entries[c] == e
	}
	v.full.Add(1)
	if v.entries[c] != e {
		return false
	}
	var newest *pair
	for _, p := range e.providers {
		if newest == nil || p.seen.After(newest.seen) {
			newest = p
		}
	}
	v.removePair(c, e, newest)
	return v.entries[c] == e
}

// setAnn makes c e's metadata. v.mu must be held.
func (v *View) setAnn(e *entry, c checked) {
	v.mem -= e.cost
	e.ann, e.signed = c.Announcement.clone(), c.signed
	e.cost = entryCost(&e.ann)
	v.mem += e.cost
}

// outranks reports whether c's metadata replaces e's, by the rules of Add.
// v.mu must be held.
func (v *View) outranks(c checked, e *entry) bool {
	cs, es := !c.signed.IsZero(), !e.signed.IsZero()
	switch {
	case cs != es:
		return cs
	case !cs:
		return !c.Time.Before(e.ann.Time)
	}
	if cp, ep := v.prefer[c.Publisher], v.prefer[e.ann.Publisher]; cp != ep {
		return cp
	}
	switch {
	case c.Publisher != e.ann.Publisher:
		return false
	case !c.signed.Equal(e.signed):
		return c.signed.After(e.signed)
	default:
		return !c.Time.Before(e.ann.Time)
	}
}

// Get returns the expert c, if some provider of it is known.
func (v *View) Get(c cid.Cid) (Entry, bool) {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.entries[c]
	if e == nil {
		return Entry{}, false
	}
	out := v.snapshot(e, now)
	return out, len(out.Providers) > 0
}

// Has reports whether some provider of c is known, without copying its
// entry.
func (v *View) Has(c cid.Cid) bool {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.entries[c]
	return e != nil && v.live(e, now)
}

// List returns every expert that matches f, by name then CID: a copy of
// the whole view when f selects all. Page returns them a page at a time.
func (v *View) List(f Filter) []Entry {
	now := v.now()
	match := f.matcher()
	v.mu.Lock()
	var out []Entry
	for _, e := range v.entries {
		if !match(&e.ann) {
			continue
		}
		if s := v.snapshot(e, now); len(s.Providers) > 0 {
			out = append(out, s)
		}
	}
	v.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry) int { return CursorOf(a).cmp(CursorOf(b)) })
	return out
}

// Providers returns the live providers of c, most recently seen first.
func (v *View) Providers(c cid.Cid) []peer.ID {
	e, _ := v.Get(c)
	out := make([]peer.ID, len(e.Providers))
	for i, p := range e.Providers {
		out[i] = p.ID
	}
	return out
}

// DropProvider forgets that p holds c (say, after a fetch from it failed)
// until p announces c again.
func (v *View) DropProvider(c cid.Cid, p peer.ID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.entries[c]
	if e == nil || e.providers[p] == nil {
		return
	}
	v.removePair(c, e, e.providers[p])
}

// Len returns the number of experts in the view, counting those whose
// providers expired but are not swept yet.
func (v *View) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.entries)
}

// Subscribe returns a channel that receives the CID of every expert new
// to the view (never seen, or seen again after it expired), and a function
// that ends the subscription and closes the channel. The view never waits
// for a subscriber: when the channel's buffer is full, notifications are
// dropped (and counted in Stats.NotifyDropped), so a subscriber should
// drain it promptly and may rescan with Scan.
func (v *View) Subscribe() (<-chan cid.Cid, func()) {
	s := &subscriber{ch: make(chan cid.Cid, subscriberBuffer)}
	v.mu.Lock()
	v.subs[s] = struct{}{}
	v.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			v.mu.Lock()
			delete(v.subs, s)
			close(s.ch)
			v.mu.Unlock()
		})
	}
}

// Expire forgets the providers not seen for the TTL and the experts left
// without one; it returns how many experts it removed. Reads already skip
// expired providers: Expire only frees their memory. It also lets the
// experts Keep kept be evicted again, if Keep no longer keeps them.
func (v *View) Expire() int {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	var parked []*pair
	for c, e := range v.entries {
		if v.expireEntry(c, e, now) {
			n++
			continue
		}
		for _, p := range e.providers {
			if p.elem == nil {
				parked = append(parked, p)
			}
		}
	}
	v.unpark(parked)
	return n
}

// expireEntry drops e's expired providers, and e if none is left; it
// reports whether e was dropped. v.mu must be held.
func (v *View) expireEntry(c cid.Cid, e *entry, now time.Time) bool {
	limit := now.Add(-v.ttl)
	for _, p := range e.providers {
		if p.seen.Before(limit) {
			v.removePair(c, e, p)
		}
	}
	return v.entries[c] != e
}

// live reports whether e has a provider seen within the TTL. v.mu must be
// held.
func (v *View) live(e *entry, now time.Time) bool {
	limit := now.Add(-v.ttl)
	for _, p := range e.providers {
		if !p.seen.Before(limit) {
			return true
		}
	}
	return false
}

// snapshot copies e with its live providers, most recent first. v.mu must
// be held.
func (v *View) snapshot(e *entry, now time.Time) Entry {
	limit := now.Add(-v.ttl)
	out := Entry{Announcement: e.ann.clone(), Signed: !e.signed.IsZero(), Providers: make([]ProviderInfo, 0, len(e.providers))}
	for id, p := range e.providers {
		if !p.seen.Before(limit) {
			out.Providers = append(out.Providers, ProviderInfo{ID: id, LastSeen: p.seen})
		}
	}
	slices.SortFunc(out.Providers, func(a, b ProviderInfo) int {
		return cmp.Or(b.LastSeen.Compare(a.LastSeen), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// peek is e as Keep and Scan see it: sharing memory, without providers.
func peek(e *entry) Entry {
	return Entry{Announcement: e.ann, Signed: !e.signed.IsZero()}
}
