package node

import (
	"context"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/internal/slogutil"
	"github.com/expertd/expertd/node/gossip"
	"github.com/expertd/expertd/node/handoff"
)

// Prefetching: experts that match inference.want are fetched as gossip
// announces them, by prefetchWorkers workers taking them from the queue
// (prefetch_queue.go) best first, each fetch failing fast when no provider
// answers (see fetch in transfers.go).
const prefetchWorkers = 2

// servePrefetch feeds the queue from the view and runs the workers until
// ctx is done; without want rules it has nothing to do.
func (n *Node) servePrefetch(ctx context.Context) error {
	if len(n.want) == 0 {
		return nil
	}
	news, stop := n.gossip.View().Subscribe() // before the scan: nothing announced meanwhile is missed
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for range prefetchWorkers {
		wg.Go(func() { n.prefetchWorker(ctx) })
	}
	wg.Go(func() { n.serveFollow(ctx) })
	// Experts known before the subscription, those whose notification was
	// dropped (a catalog pull can add thousands at once) and those the
	// queue turned away are found by scanning the view again.
	n.rescan()
	dropped := n.gossip.Stats().NotifyDropped
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-news:
			if e, ok := n.gossip.View().Get(c); ok {
				n.offer(e)
			}
		case <-tick.C:
			d := n.gossip.Stats().NotifyDropped
			if idle, turned := n.prefetchQ.idle(); d != dropped || idle && turned {
				dropped = d
				n.rescan()
			}
		}
	}
}

// rescan offers every expert of the view a want rule matches, copying
// only those.
func (n *Node) rescan() {
	var match []cid.Cid
	n.gossip.View().Scan(func(e gossip.Entry) bool {
		if n.matches(e) {
			match = append(match, e.CID)
		}
		return true
	})
	for _, c := range match {
		if e, ok := n.gossip.View().Get(c); ok {
			n.offer(e)
		}
	}
}

// offer queues e if the want rules follow it and it is not stored.
func (n *Node) offer(e gossip.Entry) {
	if !n.wants(e) {
		return
	}
	if _, err := n.store.Get(e.CID); err == nil {
		return
	}
	it := prefetchItem{cid: e.CID, source: e.Publisher.String(), rank: rankClaim}
	switch {
	case e.Signed && n.listed(e.Publisher):
		it.rank = rankListed
	case e.Signed:
		it.rank = rankSigned
	default:
		it.source = e.Provider.String() // an unsigned claim is its provider's word
	}
	queued := n.prefetchQ.push(it, time.Now())
	if gossip.Versioned(e) {
		n.watchFollowed(e, queued)
	}
}

// prefetchWorker fetches what the queue hands it until ctx is done.
func (n *Node) prefetchWorker(ctx context.Context) {
	for {
		it, ok := n.prefetchQ.pop()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-n.prefetchQ.wake:
			}
			continue
		}
		err := n.prefetchOne(ctx, it.cid)
		if ctx.Err() != nil {
			return
		}
		n.prefetchQ.done(it, err == nil, time.Now())
		if err != nil {
			n.metrics.PrefetchFailed()
		}
	}
}

// prefetchOne fetches c unless it is stored or being fetched already.
func (n *Node) prefetchOne(ctx context.Context, c cid.Cid) error {
	if _, err := n.store.Get(c); err == nil {
		return nil
	}
	t, tctx, started := n.transfers.add(ctx, c, false, time.Now())
	if !started {
		return nil // a user's fetch of it runs
	}
	n.log.Info("prefetching", slogutil.CID(c))
	return n.runFetch(tctx, t, false)
}

// wants reports whether the want rules follow e: it matches one, is
// trusted and, if it is a version of a line, it is the version its name
// resolves to (follow.go).
func (n *Node) wants(e gossip.Entry) bool {
	return n.matches(e) && n.trustedEntry(e) && n.loadable(e) && (!gossip.Versioned(e) || n.currentVersion(e))
}

// matches reports whether e matches a want rule.
func (n *Node) matches(e gossip.Entry) bool {
	cand := handoff.Candidate{CID: e.CID.String(), Name: e.Name, BaseModel: e.BaseModel, Publisher: e.Publisher.String()}
	return len(n.want) > 0 && handoff.Match(n.want, cand)
}

// listed reports whether p is this node or a publisher trust.publishers
// names by its ID (not merely by "*").
func (n *Node) listed(p peer.ID) bool {
	return p == n.p2p.ID() || n.listedPublishers[p]
}

// keepExpert tells the view which experts it must never evict: those this
// node stores, those a listed publisher signed, and the wanted ones that
// wait in the prefetch queue or are being prefetched. A wanted expert the
// queue turned away (it was full) may go, and come back when announced
// again: otherwise a flood of wanted fakes would pin the view, and new
// experts could no longer come in. It runs with the view locked.
func (n *Node) keepExpert(e gossip.Entry) bool {
	if _, err := n.store.Get(e.CID); err == nil {
		return true
	}
	return e.Signed && n.listed(e.Publisher) || n.prefetchQ.holds(e.CID)
}
