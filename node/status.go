package node

import (
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/metrics"
)

// Status implements api.Backend: everything the status page shows, every
// list cut to p.Limit.
func (n *Node) Status(p api.Page) api.Status {
	s := api.Status{Node: n.Identity(), Peers: n.Peers()}
	all := n.experts(api.Filter{Remote: true})
	for _, e := range all {
		if e.Local {
			s.Counts.LocalExperts++
		}
	}
	s.Counts.RemoteExperts = len(all) - s.Counts.LocalExperts
	page := p.Of(all)
	s.Experts, s.ExpertsNext = page.Experts, page.Next
	s.Transfers = n.transfers.list(time.Now())
	for _, t := range s.Transfers {
		if t.State == api.StateRunning {
			s.Counts.RunningTransfers++
		}
	}
	s.Adapters = []api.Adapter{}
	for _, a := range n.handoff.Status() {
		s.Adapters = append(s.Adapters, api.Adapter{
			Name: a.Name, CID: a.CID, Dir: a.Dir, Version: a.Version, ServerPath: a.ServerPath, PeftType: a.PeftType, Loaded: a.Loaded, Pending: a.Pending,
			Publisher: a.Publisher, ExpertVersion: a.ExpertVersion,
			Attempts: a.Attempts, Failed: a.Failed, LastError: a.LastError, Note: a.Note,
		})
	}
	s.Counts.Peers, s.Counts.Transfers, s.Counts.Adapters = len(s.Peers), len(s.Transfers), len(s.Adapters)
	s.Peers, s.Transfers, s.Adapters = api.Cut(s.Peers, p), api.Cut(s.Transfers, p), api.Cut(s.Adapters, p)
	for i := range s.Transfers {
		s.Transfers[i].Name = n.expertName(s.Transfers[i].CID)
	}
	return s
}

// expertName is the name of the expert c, stored or known from the swarm,
// or "".
func (n *Node) expertName(c string) string {
	id, err := cid.Decode(c)
	if err != nil {
		return ""
	}
	if m, err := n.store.Get(id); err == nil {
		return m.Name
	}
	if en, ok := n.gossip.View().Get(id); ok {
		return en.Announcement.Name
	}
	return ""
}

// snapshot feeds the metrics gauges at scrape time. It counts the view
// without copying it: a scrape costs the same with a view of 100,000
// experts as with an empty one, in memory.
func (n *Node) snapshot() metrics.Snapshot {
	var s metrics.Snapshot
	s.Peers = len(n.p2p.Network().Peers())
	view := n.gossip.View()
	vc := view.Counts()
	s.Remote = vc.Experts
	for _, m := range n.store.List() {
		s.Stored++
		if m.Pinned {
			s.Pinned++
		}
		if c, err := cid.Decode(m.CID); err == nil && view.Has(c) {
			s.Remote--
		}
	}
	s.StoreBytes, _ = n.store.Usage()
	st := n.gossip.Stats()
	s.GossipAccepted, s.GossipRejected, s.GossipIgnored = st.Accepted, st.Rejected, st.Ignored
	s.CatalogRateLimited = st.CatalogRateLimited
	hs := n.handoff.Stats()
	s.HandoffFailures = n.materializeFailures.Load() + hs.LoadFailed + hs.UnloadFailed
	s.HandoffReloads = hs.Reloads
	s.ViewBytes, s.Evicted, s.ProviderFull, s.ViewFull = vc.Bytes, vc.Evicted, vc.Capped, vc.Refused
	s.CatalogLimited = st.CatalogEntriesLimited
	s.PrefetchQueued = n.prefetchQ.len()
	return s
}
