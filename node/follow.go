package node

import (
	"context"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/node/gossip"
	"github.com/expertd/expertd/node/handoff"
	"github.com/expertd/expertd/node/store"
)

// Following a name (docs/names.md): a want rule that matches a line's
// experts fetches the version its name resolves to as soon as it is
// announced (prefetch.go), the hand-off moves the name to it (the link
// renamed, vLLM reloading it in place) and, once it is in service, it is
// pinned and the line's older versions this node fetched are unpinned: the
// store may evict them, and they stay fetchable by CID from others.
//
// A followed version is often announced before any provider this node can
// reach holds it (a relay between this node and the publisher fetches it
// a moment later): its prefetch fails at once. Such a version is tried
// again as soon as another provider of it is announced, not after the
// prefetch queue's cooldown.

// followState is what following remembers: the followed versions not held
// yet, each with the providers known when it was last offered.
type followState struct {
	mu      sync.Mutex
	pending map[cid.Cid]int
}

func newFollowState() followState { return followState{pending: map[cid.Cid]int{}} }

// Bounds of following.
const (
	// maxPending bounds the followed versions watched for new providers:
	// only trusted publishers' latest versions get there.
	maxPending = 256
	// followTick is how often those are looked at.
	followTick = 100 * time.Millisecond
)

// currentVersion reports whether e, a version of a line, is the one its
// name resolves to, among those the server could load: the version want
// rules fetch.
func (n *Node) currentVersion(e gossip.Entry) bool {
	ref := nameRef{name: e.Name}
	r, ok := n.resolveName(ref, n.versionsOf(e.Name), false, func(a gossip.Announcement) bool {
		return n.loadable(gossip.Entry{Announcement: a, Signed: true})
	})
	return ok && r.a.CID == e.CID
}

// watchFollowed remembers e, a followed version just offered to the
// prefetch queue, to try it again when another provider announces it.
func (n *Node) watchFollowed(e gossip.Entry) {
	f := &n.lines.follow
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.pending[e.CID]; ok || len(f.pending) < maxPending {
		f.pending[e.CID] = len(e.Providers)
	}
}

// serveFollow offers again, until ctx is done, the followed versions whose
// prefetch failed and which a new provider announced since.
func (n *Node) serveFollow(ctx context.Context) {
	t := time.NewTicker(followTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.refollow()
	}
}

// refollow looks at each pending followed version: forgotten once held,
// gone from the view or no longer followed; offered again, its failure
// forgiven, when it has more providers than when last offered.
func (n *Node) refollow() {
	f := &n.lines.follow
	f.mu.Lock()
	if len(f.pending) == 0 {
		f.mu.Unlock()
		return
	}
	pending := make(map[cid.Cid]int, len(f.pending))
	for c, k := range f.pending {
		pending[c] = k
	}
	f.mu.Unlock()
	for c, k := range pending {
		e, ok := n.gossip.View().Get(c)
		_, err := n.store.Get(c)
		switch {
		case err == nil || !ok || !n.wants(e):
			f.mu.Lock()
			delete(f.pending, c)
			f.mu.Unlock()
		case len(e.Providers) > k && !n.prefetchQ.holds(c):
			n.prefetchQ.forgive(c)
			n.offer(e)
		}
	}
}

// lineVersionOf is the place of the stored expert m in its line, for the
// hand-off: the zero Version if it is in none.
func (n *Node) lineVersionOf(m store.Meta) handoff.Version {
	a, ok := n.publicationOf(m)
	if !ok || a.Version == 0 {
		return handoff.Version{}
	}
	return handoff.Version{Publisher: a.Publisher.String(), Seq: a.Version}
}

// inService is called once m, a stored expert, is handed to the inference
// server. If it is a version of a line a want rule follows, it is pinned
// (the server needs it) and the line's older versions this node fetched
// are unpinned; its own publications stay pinned, for others to fetch.
func (n *Node) inService(m store.Meta) {
	a, ok := n.publicationOf(m)
	if !ok || a.Version == 0 || !n.matches(gossip.Entry{Announcement: a, Signed: true}) {
		return
	}
	ln := gossip.LineOf(a)
	for _, o := range n.store.List() {
		oa, ok := n.publicationOf(o)
		if !ok || gossip.LineOf(oa) != ln {
			continue
		}
		if oa.Version > a.Version {
			continue // newer, not in service yet: not following's to say
		}
		keep := oa.CID == a.CID || oa.Publisher == n.host.ID()
		if o.Pinned == keep {
			continue
		}
		c, err := cid.Decode(o.CID)
		if err == nil {
			err = n.store.Pin(c, keep)
		}
		if err != nil {
			n.log.Warn("following: (un)pinning a version", "cid", o.CID, "pin", keep, "err", err)
			continue
		}
		what := "following: superseded version unpinned"
		if keep {
			what = "following: version in service pinned"
		}
		n.log.Info(what, "name", oa.Name, "version", oa.Version, "cid", o.CID)
	}
}
