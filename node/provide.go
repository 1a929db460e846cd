package node

import (
	"context"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/internal/slogutil"
	"github.com/expertd/expertd/node/gossip"
)

// What this node tells the swarm it holds: the catalog gossip re-announces
// and hands to peers, and the DHT provider records of its experts.

// reprovideInterval renews the DHT provider records of stored experts
// (kad-dht keeps them 48 hours).
const reprovideInterval = 12 * time.Hour

// serveDHT bootstraps the host (a bootstrap peer out of reach is logged,
// not fatal), then puts a provider record for every stored expert every
// reprovideInterval until ctx ends.
func (n *Node) serveDHT(ctx context.Context) error {
	if err := n.p2p.Bootstrap(ctx); err != nil {
		n.log.Warn("bootstrap", slogutil.Err(err))
	}
	for {
		n.reprovide(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(reprovideInterval):
		}
	}
}

// catalog is what this node holds, for gossip's re-announcements and
// catalog exchanges.
func (n *Node) catalog() []gossip.Announcement {
	var out []gossip.Announcement
	for _, m := range n.store.List() {
		if a, err := announcementFromMeta(m, n.p2p.ID()); err == nil {
			out = append(out, a)
		}
	}
	return n.withoutSuperseded(out)
}

// reprovide puts a DHT provider record for every stored expert.
func (n *Node) reprovide(ctx context.Context) {
	for _, m := range n.store.List() {
		if c, err := cid.Decode(m.CID); err == nil {
			n.provide(ctx, c)
		}
	}
}

func (n *Node) provide(ctx context.Context, c cid.Cid) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := n.p2p.Provide(ctx, c); err != nil && ctx.Err() == nil {
		n.log.Debug("dht provide failed", slogutil.CID(c), slogutil.Err(err))
	}
}
