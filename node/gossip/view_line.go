package gossip

import (
	"cmp"
	"slices"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/expertname"
)

// What a View keeps of lines of versions (line.go): for each line, the
// latest version it holds (its head), plus the older versions Keep keeps
// (those the node stores, say). When a newer version of a line comes in,
// the view drops the head it replaces, unless Keep keeps it; an
// announcement of a version older than the head, or of another expert
// under the head's version, is not added (the validator ignores those
// already; this holds for View.Add too). An entry that is no head any
// more, but kept, is refreshed by its announcements as any other.

// headOverhead is what the view accounts for a head: its slot in the
// inner map and a share of the map.
const headOverhead = 128

// headCost is what the view accounts for a's place among the heads.
func headCost(a *Announcement) int64 {
	if a.Version == 0 || len(a.Envelope) == 0 {
		return 0
	}
	return headOverhead + int64(len(expertname.Key(a.Name))+len(a.Publisher))
}

// versioned reports whether c is a version of its line.
func (c checked) versioned() bool { return !c.signed.IsZero() && c.Version > 0 }

// headOf returns the entry of ln's head, dropping a stale record of one
// (its entry gone, or holding another line's metadata now). v.mu must be
// held.
func (v *View) headOf(ln Line) (cid.Cid, *entry) {
	c, ok := v.heads[ln.Key][ln.Publisher]
	if !ok {
		return cid.Undef, nil
	}
	e := v.entries[c]
	if e == nil || e.signed.IsZero() || e.ann.Version == 0 || LineOf(e.ann) != ln {
		v.unhead(ln, c)
		return cid.Undef, nil
	}
	return c, e
}

// placeVersion decides what c, a version of its line, does to the view:
// add reports whether it may be added (or refresh its entry), newer whether
// it becomes its line's head once added. v.mu must be held.
func (v *View) placeVersion(c checked) (add, newer bool) {
	hc, he := v.headOf(LineOf(c.Announcement))
	switch {
	case he == nil:
		return true, true
	case hc == c.CID:
		return true, false
	case c.Version > he.ann.Version:
		return true, true
	}
	// Older than the head, or another expert under its version: only an
	// entry the view holds already (kept) is refreshed.
	if v.entries[c.CID] != nil {
		return true, false
	}
	v.superseded.Add(1)
	return false, false
}

// setHead makes c, the expert now held in the view's entries, the head of
// its line, and drops the head it replaces unless Keep keeps it. v.mu must
// be held.
func (v *View) setHead(c checked) {
	ln := LineOf(c.Announcement)
	if oc, oe := v.headOf(ln); oe != nil && oc != c.CID {
		v.unhead(ln, oc)
		if v.keep == nil || !v.keep(peek(oe)) {
			v.dropEntry(oc, oe)
			v.superseded.Add(1)
		}
	}
	m := v.heads[ln.Key]
	if m == nil {
		m = map[peer.ID]cid.Cid{}
		v.heads[ln.Key] = m
	}
	m[ln.Publisher] = c.CID
}

// unhead forgets that c heads ln. v.mu must be held.
func (v *View) unhead(ln Line, c cid.Cid) {
	m := v.heads[ln.Key]
	if h, ok := m[ln.Publisher]; !ok || h != c {
		return
	}
	delete(m, ln.Publisher)
	if len(m) == 0 {
		delete(v.heads, ln.Key)
	}
}

// dropEntry forgets e, the entry of c, with all its providers. v.mu must
// be held.
func (v *View) dropEntry(c cid.Cid, e *entry) {
	for _, p := range e.providers {
		v.removePair(c, e, p)
	}
}

// Head returns the latest version of ln the view holds, if it has a live
// provider.
func (v *View) Head(ln Line) (Entry, bool) {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	_, e := v.headOf(ln)
	if e == nil || !v.live(e, now) {
		return Entry{}, false
	}
	return v.snapshot(e, now), true
}

// Heads returns, for every publisher with a line of name (compared by
// expertname.Key), the latest version the view holds that has a live
// provider, by publisher.
func (v *View) Heads(name string) []Entry {
	key := expertname.Key(name)
	now := v.now()
	v.mu.Lock()
	var out []Entry
	for pub := range v.heads[key] {
		if _, e := v.headOf(Line{Publisher: pub, Key: key}); e != nil && v.live(e, now) {
			out = append(out, v.snapshot(e, now))
		}
	}
	v.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry) int { return cmp.Compare(a.Publisher, b.Publisher) })
	return out
}
