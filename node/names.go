package node

import (
	"cmp"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/expertname"
	"github.com/expertd/expertd/node/gossip"
	"github.com/expertd/expertd/node/handoff"
	"github.com/expertd/expertd/node/store"
)

// Names and versions (docs/names.md). A publisher's experts of one name
// form a line of versions, (publisher, expertname.Key(name)), numbered by
// the publisher in its signed publications. A name resolves to the latest
// version of one line: the publisher named ("publisher/name"), else the
// line holding the name in the adapters dir, else this node's own, else
// that of the first publisher in trust.publishers that uses the name; only
// trusted publishers' lines count unless the user names the publisher.

// lineState is the node's state for names and versions.
type lineState struct {
	counters   *versionCounters // this node's own lines (publish)
	publishing sync.Mutex       // held while a version is signed and stored
	pubs       pubCache
	follow     followState
}

func newLineState(dataDir string) *lineState {
	return &lineState{counters: newVersionCounters(dataDir), follow: newFollowState()}
}

// pubCache remembers what the publication of each stored expert says, so
// that its signature is verified once, not at every listing.
type pubCache struct {
	mu   sync.Mutex
	seed maphash.Seed
	m    map[string]pubInfo // by CID
}

type pubInfo struct {
	env uint64 // hash of the envelope it was read from
	a   gossip.Announcement
	ok  bool
}

// maxPubCache bounds the publications remembered; past it, the cache
// starts over.
const maxPubCache = 8192

// publicationOf returns m's publication, verified, if it has one for its
// CID.
func (n *Node) publicationOf(m store.Meta) (gossip.Announcement, bool) {
	if len(m.Envelope) == 0 {
		return gossip.Announcement{}, false
	}
	c := &n.lines.pubs
	c.mu.Lock()
	if c.m == nil {
		c.seed, c.m = maphash.MakeSeed(), map[string]pubInfo{}
	}
	h := maphash.Bytes(c.seed, m.Envelope)
	p, hit := c.m[m.CID]
	c.mu.Unlock()
	if hit && p.env == h {
		return p.a, p.ok
	}
	a, err := gossip.OpenPublication(m.Envelope)
	p = pubInfo{env: h, a: a, ok: err == nil && a.CID.String() == m.CID}
	p.a.Envelope = nil // the store has it
	c.mu.Lock()
	if len(c.m) >= maxPubCache {
		clear(c.m)
	}
	c.m[m.CID] = p
	c.mu.Unlock()
	return p.a, p.ok
}

// versionOf returns the version of m's line, 0 if m is in none.
func (n *Node) versionOf(m store.Meta) uint64 {
	a, ok := n.publicationOf(m)
	if !ok {
		return 0
	}
	return a.Version
}

// nameRef is a name as a user or the inference server gives it: "name",
// or "publisher/name" for that publisher's line.
type nameRef struct {
	publisher peer.ID // "" for any trusted one
	name      string
}

// parseNameRef reads "name" or "<peer id>/name". A name may hold slashes
// itself ("org/model"): only a first element that is a peer ID names a
// publisher.
func parseNameRef(s string) (nameRef, error) {
	if err := gossip.CheckName(s); err != nil || s == "" {
		return nameRef{}, fmt.Errorf("%w: name %q: %v", api.ErrBadRequest, s, err)
	}
	if first, rest, ok := strings.Cut(s, "/"); ok && rest != "" {
		if p, err := peer.Decode(first); err == nil {
			return nameRef{publisher: p, name: rest}, nil
		}
	}
	return nameRef{name: s}, nil
}

// lineVersion is one version of a line, held here or announced.
type lineVersion struct {
	a      gossip.Announcement // the publication's metadata; Provider and Envelope unset
	local  bool
	pinned bool
	provs  int // providers other than this node
}

// versionsOf returns the versions this node knows of the lines of name:
// those it holds, and each line's head in the view.
func (n *Node) versionsOf(name string) []lineVersion {
	key := expertname.Key(name)
	var out []lineVersion
	held := map[cid.Cid]bool{}
	for _, m := range n.store.List() {
		if expertname.Key(m.Name) != key {
			continue
		}
		if a, ok := n.publicationOf(m); ok && a.Version > 0 && expertname.Key(a.Name) == key {
			out = append(out, lineVersion{a: a, local: true, pinned: m.Pinned})
			held[a.CID] = true
		}
	}
	for _, e := range n.gossip.View().Heads(name) {
		if held[e.CID] {
			for i := range out {
				if out[i].a.CID == e.CID {
					out[i].provs = n.otherProviderCount(e)
				}
			}
			continue
		}
		a := e.Announcement
		a.Provider, a.Envelope = "", nil
		out = append(out, lineVersion{a: a, provs: n.otherProviderCount(e)})
	}
	slices.SortFunc(out, func(x, y lineVersion) int {
		return cmp.Or(cmp.Compare(x.a.Publisher, y.a.Publisher), cmp.Compare(y.a.Version, x.a.Version))
	})
	return out
}

func (n *Node) otherProviderCount(e gossip.Entry) int {
	k := 0
	for _, p := range e.Providers {
		if p.ID != n.p2p.ID() {
			k++
		}
	}
	return k
}

// trustedPublisher reports whether p's experts go to the inference server
// and want rules: trust.publishers names it (or is "*"), or it is this
// node.
func (n *Node) trustedPublisher(p peer.ID) bool {
	return n.cfg.Trust.Everyone() || slices.Contains(n.trustedPeers(), p)
}

// errNoName: no version of a name is known that resolves.
var errNoName = errors.New("no version of the name is known")

// resolveName picks the version ref resolves to among vs (versionsOf):
// the latest of one line, and of the lines of trusted publishers only,
// unless ref names the publisher and vouched (the user asked for it: as
// when fetching by CID, naming the publisher vouches for it). ok, if set,
// filters the versions (the inference server's policy): the latest
// version that passes. The line is the one the publisher ref names; else
// the one holding the name in the adapters dir; else this node's; else
// the first trust.publishers lists; else (trust.publishers "*") the one
// published to last.
func (n *Node) resolveName(ref nameRef, vs []lineVersion, vouched bool, ok func(gossip.Announcement) bool) (lineVersion, bool) {
	cands := map[peer.ID][]lineVersion{}
	for _, v := range vs {
		p := v.a.Publisher
		switch {
		case ref.publisher != "" && p != ref.publisher:
		case !(ref.publisher != "" && vouched) && !n.trustedPublisher(p):
		case ok != nil && !ok(v.a):
		default:
			cands[p] = append(cands[p], v)
		}
	}
	if len(cands) == 0 {
		return lineVersion{}, false
	}
	for _, p := range n.publisherOrder(ref.name, cands) {
		if l := cands[p]; len(l) > 0 {
			return slices.MaxFunc(l, func(x, y lineVersion) int { return cmp.Compare(x.a.Version, y.a.Version) }), true
		}
	}
	return lineVersion{}, false
}

// publisherOrder lists the publishers of cands in the order resolveName
// prefers them for name.
func (n *Node) publisherOrder(name string, cands map[peer.ID][]lineVersion) []peer.ID {
	var order []peer.ID
	if n.handoffOn() {
		if m, ok := n.handoff.Holder(name); ok && m.Publisher != "" {
			if p, err := peer.Decode(m.Publisher); err == nil {
				order = append(order, p)
			}
		}
	}
	order = append(order, n.p2p.ID())
	for _, s := range n.cfg.Trust.Publishers {
		if p, err := peer.Decode(s); err == nil {
			order = append(order, p)
		}
	}
	var rest []peer.ID
	for p := range cands {
		if !slices.Contains(order, p) {
			rest = append(rest, p)
		}
	}
	latest := func(p peer.ID) time.Time {
		var t time.Time
		for _, v := range cands[p] {
			if v.a.Time.After(t) {
				t = v.a.Time
			}
		}
		return t
	}
	slices.SortFunc(rest, func(a, b peer.ID) int { return cmp.Or(latest(b).Compare(latest(a)), cmp.Compare(a, b)) })
	return append(order, rest...)
}

// expertOf is expertFromMeta with the version of the expert's line.
func (n *Node) expertOf(m store.Meta) api.Expert {
	e := expertFromMeta(m)
	e.Version = n.versionOf(m)
	return e
}

// Name implements api.Backend: what the node knows of a name, and the
// version it resolves to for the user (who may name an untrusted
// publisher). Names of experts published before versions resolve as
// /v1/resolve always did (see resolveTarget).
func (n *Node) Name(s string) (api.NameInfo, error) {
	ref, err := parseNameRef(s)
	if err != nil {
		return api.NameInfo{}, err
	}
	vs := n.versionsOf(ref.name)
	info := api.NameInfo{Name: s}
	var holder handoff.Marker
	if n.handoffOn() {
		holder, _ = n.handoff.Holder(ref.name)
	}
	for _, v := range vs {
		if ref.publisher != "" && v.a.Publisher != ref.publisher {
			continue
		}
		info.Versions = append(info.Versions, n.nameVersion(v, holder))
	}
	if r, ok := n.resolveName(ref, vs, true, nil); ok {
		nv := n.nameVersion(r, holder)
		info.Resolved = &nv
	} else if ref.publisher == "" {
		if c := n.resolveTarget(ref.name, handoff.Policy{}); c != "" {
			info.Resolved = n.unversioned(c)
		}
	}
	if info.Resolved == nil && len(info.Versions) == 0 {
		return info, fmt.Errorf("%w: %q: %w", api.ErrNotFound, s, errNoName)
	}
	return info, nil
}

func (n *Node) nameVersion(v lineVersion, holder handoff.Marker) api.NameVersion {
	return api.NameVersion{
		Name: v.a.Name, Publisher: v.a.Publisher.String(), Version: v.a.Version, CID: v.a.CID.String(),
		Local: v.local, Pinned: v.pinned, Trusted: n.trustedPublisher(v.a.Publisher),
		InService: holder.CID == v.a.CID.String(), Published: v.a.Time, Providers: v.provs,
	}
}

// unversioned describes the expert c, of no line, as a NameVersion.
func (n *Node) unversioned(s string) *api.NameVersion {
	e, err := n.Expert(s)
	if err != nil {
		return nil
	}
	return &api.NameVersion{Name: e.Name, Publisher: e.Publisher, CID: e.CID, Local: e.Local, Pinned: e.Pinned, Trusted: e.Trusted, Providers: len(e.Providers)}
}

// superseded reports whether this node knows a newer version of m's line
// (held, or announced), so that m is not announced, handed off nor
// prefetched any more.
func (n *Node) superseded(m store.Meta) bool {
	a, ok := n.publicationOf(m)
	return ok && a.Version > 0 && n.newerThan(a, n.latestHeld())
}

// latestHeld returns, per line, the latest version this node holds.
func (n *Node) latestHeld() map[gossip.Line]uint64 {
	out := map[gossip.Line]uint64{}
	for _, m := range n.store.List() {
		if a, ok := n.publicationOf(m); ok && a.Version > out[gossip.LineOf(a)] {
			out[gossip.LineOf(a)] = a.Version
		}
	}
	return out
}

// newerThan reports whether a version of a's line newer than a is known:
// held (held is latestHeld), accepted from the swarm or announced by this
// node (the validator's record), or in the view.
func (n *Node) newerThan(a gossip.Announcement, held map[gossip.Line]uint64) bool {
	ln := gossip.LineOf(a)
	if held[ln] > a.Version {
		return true
	}
	if v, ok := n.gossip.LatestVersion(ln); ok && v > a.Version {
		return true
	}
	h, ok := n.gossip.View().Head(ln)
	return ok && h.Version > a.Version
}

// withoutSuperseded drops from a catalog the versions this node knows
// newer ones of: the swarm takes a line's latest version from catalogs
// and re-announcements, and would ignore the older ones. They stay
// fetchable by CID (the DHT has their provider records).
func (n *Node) withoutSuperseded(cat []gossip.Announcement) []gossip.Announcement {
	held := n.latestHeld()
	return slices.DeleteFunc(cat, func(a gossip.Announcement) bool {
		return a.Version > 0 && len(a.Envelope) > 0 && n.newerThan(a, held)
	})
}

// noteStoredLines tells gossip the versions this node holds, so that it
// refuses older ones after a restart as before it.
func (n *Node) noteStoredLines() {
	for _, m := range n.store.List() {
		if a, ok := n.publicationOf(m); ok && a.Version > 0 {
			a.Envelope = m.Envelope
			n.gossip.NoteLine(a)
		}
	}
}
