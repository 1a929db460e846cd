package gossip

import (
	"cmp"
	"container/heap"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	cid "github.com/ipfs/go-cid"
)

// Reading a large view without copying it: Page, Scan and Counts cost
// memory for what they return, not for the view.

// Cursor is a place in the order of View.List and View.Page: by name,
// then by CID (as bytes). Its zero value is the start.
type Cursor struct {
	Name string
	CID  cid.Cid
}

// CursorOf returns the place of e: a Page after it starts with the expert
// that follows e.
func CursorOf(e Entry) Cursor { return cursorOf(&e.Announcement) }

func cursorOf(a *Announcement) Cursor { return Cursor{Name: a.Name, CID: a.CID} }

// cmp orders two places: negative if c comes before d.
func (c Cursor) cmp(d Cursor) int {
	return cmp.Or(cmp.Compare(c.Name, d.Name), cmp.Compare(c.CID.KeyString(), d.CID.KeyString()))
}

// String encodes c for a URL query (base64url of the name, a dot, the
// CID); the zero Cursor is "". ParseCursor reads it back.
func (c Cursor) String() string {
	if c == (Cursor{}) {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(c.Name)) + "." + c.CID.String()
}

// ParseCursor decodes a Cursor.String; "" is the start. Errors wrap
// ErrInvalid.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	name, id, ok := strings.Cut(s, ".")
	if !ok || len(s) > 2*maxNameLen+2*maxIDLen {
		return Cursor{}, fmt.Errorf("%w: cursor %q", ErrInvalid, s)
	}
	n, err := base64.RawURLEncoding.DecodeString(name)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w: cursor name: %v", ErrInvalid, err)
	}
	c, err := cid.Decode(id)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w: cursor CID: %v", ErrInvalid, err)
	}
	return Cursor{Name: string(n), CID: c}, nil
}

// Page returns, in the order of List, at most limit experts that match f
// and come after the cursor, and whether more follow: the next page
// starts after CursorOf its last entry. It copies only the entries it
// returns, so a client may walk a view of any size in pages of a size it
// chooses (an expert added or removed meanwhile is listed or not, as a
// page reaches its place).
func (v *View) Page(f Filter, after Cursor, limit int) (page []Entry, more bool) {
	if limit <= 0 {
		return nil, false
	}
	now := v.now()
	match := f.matcher()
	v.mu.Lock()
	// The limit+1 first entries after the cursor, last first.
	h := &pageHeap{}
	for _, e := range v.entries {
		if cursorOf(&e.ann).cmp(after) <= 0 || !match(&e.ann) || !v.live(e, now) {
			continue
		}
		if h.Len() <= limit {
			heap.Push(h, e)
		} else if cursorOf(&e.ann).cmp(cursorOf(&(*h)[0].ann)) < 0 {
			(*h)[0] = e
			heap.Fix(h, 0)
		}
	}
	if more = h.Len() > limit; more {
		heap.Pop(h)
	}
	page = make([]Entry, 0, h.Len())
	for _, e := range *h {
		page = append(page, v.snapshot(e, now))
	}
	v.mu.Unlock()
	slices.SortFunc(page, func(a, b Entry) int { return CursorOf(a).cmp(CursorOf(b)) })
	return page, more
}

// pageHeap holds entries, the last in List's order on top.
type pageHeap []*entry

func (h pageHeap) Len() int           { return len(h) }
func (h pageHeap) Less(i, j int) bool { return cursorOf(&h[i].ann).cmp(cursorOf(&h[j].ann)) > 0 }
func (h pageHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pageHeap) Push(x any)        { *h = append(*h, x.(*entry)) }
func (h *pageHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// Scan calls f on every expert with a live provider, in no order, until f
// returns false. Like Keep, f runs with the view locked and gets an Entry
// without Providers that shares memory with the view: it must be quick,
// must not keep or modify the entry's slices and must not call the View.
func (v *View) Scan(f func(Entry) bool) {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range v.entries {
		if v.live(e, now) && !f(peek(e)) {
			return
		}
	}
}

// ViewCounts is the size of a View and what its bounds did.
type ViewCounts struct {
	// Experts with a live provider; Pairs of an expert and a provider,
	// Providers and Sources (peers that delivered pairs) held, counting
	// those expired but not swept yet; Bytes of memory accounted for them
	// (see ViewOptions.MaxBytes).
	Experts, Pairs, Providers, Sources int
	Bytes                              int64
	// Since the view was made: pairs evicted to make room, announcements
	// ignored because their provider held MaxPerProvider experts, new
	// experts refused because nothing was left to evict, and new-expert
	// notifications dropped because a subscriber was slow.
	Evicted, Capped, Refused, NotifyDropped uint64
}

// Counts returns the view's counts, reading every pair but copying none.
func (v *View) Counts() ViewCounts { return v.counts(true) }

// counts is Counts; without live, Experts counts those expired too, and
// it costs no scan.
func (v *View) counts(live bool) ViewCounts {
	now := v.now()
	v.mu.Lock()
	c := ViewCounts{Experts: len(v.entries), Pairs: v.pairs, Providers: len(v.provs), Sources: len(v.srcs), Bytes: v.mem}
	if live {
		c.Experts = 0
		for _, e := range v.entries {
			if v.live(e, now) {
				c.Experts++
			}
		}
	}
	v.mu.Unlock()
	c.Evicted, c.Capped, c.Refused, c.NotifyDropped = v.evicted.Load(), v.capped.Load(), v.full.Load(), v.dropped.Load()
	return c
}
