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
	// subscriberBuffer is the channel capacity of View.Subscribe.
	subscriberBuffer = 64
)

// View is what a node knows of the swarm: for each expert, the
// announcement whose metadata it believes (see Add) and the peers that
// announced holding it, each with when it was last seen. A provider not
// seen for the TTL is forgotten, and an expert with no provider left with
// it. It is safe for concurrent use.
type View struct {
	ttl    time.Duration
	max    int
	now    func() time.Time
	prefer map[peer.ID]bool // publishers whose publications win; set before use

	mu      sync.Mutex
	entries map[cid.Cid]*entry
	subs    map[*subscriber]struct{}

	dropped atomic.Uint64 // notifications lost to full subscriber channels
	full    atomic.Uint64 // experts refused because the view was full
}

type entry struct {
	ann       Announcement // the announcement whose metadata the view holds
	signed    time.Time    // when ann's verified publication was signed; zero: unsigned
	providers map[peer.ID]time.Time
}

type subscriber struct {
	ch chan cid.Cid
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

// Filter selects experts in View.List. Its zero value selects all.
type Filter struct {
	BaseModel string // equal, ignoring case
	PeftType  string // equal, ignoring case
	Name      string // substring, ignoring case
}

// NewView returns an empty view that forgets providers after ttl (0:
// DefaultTTL) and holds at most maxExperts experts (0: DefaultMaxExperts).
func NewView(ttl time.Duration, maxExperts int) *View {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if maxExperts <= 0 {
		maxExperts = DefaultMaxExperts
	}
	return &View{
		ttl:     ttl,
		max:     maxExperts,
		now:     time.Now,
		entries: map[cid.Cid]*entry{},
		subs:    map[*subscriber]struct{}{},
	}
}

// Add records a: a.Provider holds a.CID as of a.Time (or now, if a.Time
// is later), and a's metadata may replace the expert's. Metadata from a
// verified publication (a with an Envelope) is preferred to unsigned
// claims: an unsigned announcement never replaces signed metadata, and a
// signed one always replaces unsigned metadata. Between publications, one
// by a preferred publisher (Options.TrustedPublishers) replaces one by
// another; otherwise the publication held is kept, unless its own
// publisher signed the new one later. Among unsigned announcements, and
// among announcements of the same publication, the latest wins.
//
// Add reports whether the expert is new to the view; if so, subscribers
// are told. It ignores invalid announcements, those whose envelope does
// not verify or differs from them, those older than the TTL, and new
// experts while the view is full.
func (v *View) Add(a Announcement) bool {
	if a.Validate() != nil {
		return false
	}
	signed, err := checkPublication(a)
	if err != nil {
		return false
	}
	return v.add(checked{a, signed})
}

// add is Add of an announcement already checked.
func (v *View) add(c checked) bool {
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
	if e != nil {
		v.expireEntry(a.CID, e, now)
		e = v.entries[a.CID]
	}
	isNew := e == nil
	if isNew {
		if len(v.entries) >= v.max {
			v.full.Add(1)
			return false
		}
		e = &entry{ann: a.clone(), signed: c.signed, providers: map[peer.ID]time.Time{}}
		v.entries[a.CID] = e
	} else if v.outranks(c, e) {
		e.ann, e.signed = a.clone(), c.signed
	}
	if last, ok := e.providers[a.Provider]; !ok || seen.After(last) {
		e.providers[a.Provider] = seen
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

// preferring makes v prefer publications by publishers (see Add); it is
// called before v is used.
func (v *View) preferring(publishers []peer.ID) *View {
	for _, p := range publishers {
		if v.prefer == nil {
			v.prefer = map[peer.ID]bool{}
		}
		v.prefer[p] = true
	}
	return v
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

// List returns the experts that match f, by name then CID.
func (v *View) List(f Filter) []Entry {
	now := v.now()
	name := strings.ToLower(f.Name)
	v.mu.Lock()
	var out []Entry
	for _, e := range v.entries {
		a := &e.ann
		if f.BaseModel != "" && !strings.EqualFold(a.BaseModel, f.BaseModel) ||
			f.PeftType != "" && !strings.EqualFold(a.PeftType, f.PeftType) ||
			name != "" && !strings.Contains(strings.ToLower(a.Name), name) {
			continue
		}
		if s := v.snapshot(e, now); len(s.Providers) > 0 {
			out = append(out, s)
		}
	}
	v.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.CID.KeyString(), b.CID.KeyString()))
	})
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
	if e == nil {
		return
	}
	delete(e.providers, p)
	if len(e.providers) == 0 {
		delete(v.entries, c)
	}
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
// drain it promptly and may rescan with List.
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
// expired providers: Expire only frees their memory.
func (v *View) Expire() int {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for c, e := range v.entries {
		if v.expireEntry(c, e, now) {
			n++
		}
	}
	return n
}

// expireEntry drops e's expired providers, and e if none is left; it
// reports whether e was dropped. v.mu must be held.
func (v *View) expireEntry(c cid.Cid, e *entry, now time.Time) bool {
	limit := now.Add(-v.ttl)
	for p, t := range e.providers {
		if t.Before(limit) {
			delete(e.providers, p)
		}
	}
	if len(e.providers) == 0 {
		delete(v.entries, c)
		return true
	}
	return false
}

// snapshot copies e with its live providers, most recent first. v.mu must
// be held.
func (v *View) snapshot(e *entry, now time.Time) Entry {
	limit := now.Add(-v.ttl)
	out := Entry{Announcement: e.ann.clone(), Signed: !e.signed.IsZero(), Providers: make([]ProviderInfo, 0, len(e.providers))}
	for p, t := range e.providers {
		if !t.Before(limit) {
			out.Providers = append(out.Providers, ProviderInfo{ID: p, LastSeen: t})
		}
	}
	slices.SortFunc(out.Providers, func(a, b ProviderInfo) int {
		return cmp.Or(b.LastSeen.Compare(a.LastSeen), cmp.Compare(a.ID, b.ID))
	})
	return out
}
