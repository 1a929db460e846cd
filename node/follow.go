package node

import (
	"context"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

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
// yet, each with the providers it was queued with.
type followState struct {
	mu      sync.Mutex
	pending map[cid.Cid]*followed
}

type followed struct {
	since time.Time        // first offered
	tried map[peer.ID]bool // providers known when it was last queued
}

func newFollowState() followState { return followState{pending: map[cid.Cid]*followed{}} }

// Bounds of following.
const (
	// maxPending bounds the followed versions watched for new providers:
	// only trusted publishers' latest versions get there.
	maxPending = 256
	// maxTried bounds the providers remembered per version.
	maxTried = 16
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
// prefetch queue (queued if queued), to try it again when a provider it was
// not queued with announces it.
func (n *Node) watchFollowed(e gossip.Entry, queued bool) {
	f := &n.lines.follow
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.pending[e.CID]
	if w == nil {
		if len(f.pending) >= maxPending {
			return
		}
		w = &followed{since: time.Now(), tried: map[peer.ID]bool{}}
		f.pending[e.CID] = w
	}
	if queued {
		for _, p := range e.Providers {
			if len(w.tried) < maxTried {
				w.tried[p.ID] = true
			}
		}
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
		n.refollow(time.Now())
	}
}

// refollow looks at each pending followed version at now: forgotten once
// held, no longer followed, or watched for prefetchCooldown (the prefetch
// queue takes it again then); offered again, its failure forgiven, when a
// provider it was not queued with announces it. One that left the view
// (its only provider failed, and was dropped) is kept: it comes back when
// another provider announces it.
func (n *Node) refollow(now time.Time) {
	f := &n.lines.follow
	f.mu.Lock()
	retry := map[cid.Cid]gossip.Entry{}
	for c, w := range f.pending {
		if now.Sub(w.since) > prefetchCooldown {
			delete(f.pending, c)
			continue
		}
		e, ok := n.gossip.View().Get(c)
		if !ok {
			continue
		}
		for _, p := range e.Providers {
			if !w.tried[p.ID] {
				retry[c] = e
			}
		}
	}
	f.mu.Unlock()
	for c, e := range retry {
		_, err := n.store.Get(c)
		switch {
		case err == nil || !n.wants(e):
			f.mu.Lock()
			delete(f.pending, c)
			f.mu.Unlock()
		case !n.prefetchQ.holds(c):
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
		keep := oa.CID == a.CID || oa.Publisher == n.p2p.ID()
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
