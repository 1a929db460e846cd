package gossip

import (
	"sync/atomic"
)

// Stats counts what a Service did since it was made.
type Stats struct {
	// Topic messages from other peers, by validation outcome; RateLimited
	// counts those ignored for exceeding ProviderLimit or PublisherLimit
	// (they are in Ignored too).
	Accepted, Rejected, Ignored, RateLimited uint64
	// Announcements this node published, and publications that failed.
	Published, PublishErrors uint64
	// Catalog pulls that completed or failed, and the entries accepted
	// and rejected in them.
	CatalogPulls, CatalogPullErrors   uint64
	CatalogAccepted, CatalogRejected  uint64
	CatalogServed, CatalogServeErrors uint64
	// Catalog streams reset for exceeding CatalogLimit (also in
	// CatalogServeErrors), and catalog entries skipped for exceeding
	// CatalogEntryLimit or MaxPerProvider.
	CatalogRateLimited, CatalogEntriesLimited uint64
	// Experts in the view now (counting those whose providers expired but
	// are not swept yet) and the bytes accounted for them; new-expert
	// notifications dropped because a subscriber was slow; new experts
	// refused because the view was full of experts it keeps; pairs of an
	// expert and a provider evicted to make room, and ignored because
	// their provider held MaxPerProvider experts.
	Experts                 int
	ViewBytes               int64
	NotifyDropped, ViewFull uint64
	Evicted, ProviderFull   uint64
}

type counters struct {
	accepted, rejected, ignored      atomic.Uint64
	rateLimited                      atomic.Uint64
	published, publishErrors         atomic.Uint64
	pulls, pullErrors                atomic.Uint64
	catalogAccepted, catalogRejected atomic.Uint64
	served, serveErrors              atomic.Uint64
	catalogLimited, entriesLimited   atomic.Uint64
}

// Stats returns the service's counters.
func (s *Service) Stats() Stats {
	c := &s.stats
	vc := s.view.counts(false)
	return Stats{
		Accepted:              c.accepted.Load(),
		Rejected:              c.rejected.Load(),
		Ignored:               c.ignored.Load(),
		RateLimited:           c.rateLimited.Load(),
		Published:             c.published.Load(),
		PublishErrors:         c.publishErrors.Load(),
		CatalogPulls:          c.pulls.Load(),
		CatalogPullErrors:     c.pullErrors.Load(),
		CatalogAccepted:       c.catalogAccepted.Load(),
		CatalogRejected:       c.catalogRejected.Load(),
		CatalogServed:         c.served.Load(),
		CatalogServeErrors:    c.serveErrors.Load(),
		CatalogRateLimited:    c.catalogLimited.Load(),
		CatalogEntriesLimited: c.entriesLimited.Load(),
		Experts:               s.view.Len(),
		ViewBytes:             vc.Bytes,
		NotifyDropped:         vc.NotifyDropped,
		ViewFull:              vc.Refused,
		Evicted:               vc.Evicted,
		ProviderFull:          vc.Capped,
	}
}
