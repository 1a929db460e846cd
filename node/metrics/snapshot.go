package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	peersDesc = prometheus.NewDesc("expertd_peers",
		"Peers connected now.", nil, nil)
	expertsDesc = prometheus.NewDesc("expertd_experts",
		"Experts by state: stored (in the local store), pinned (stored and pinned), remote (known from the swarm only).",
		[]string{"state"}, nil)
	storeBytesDesc = prometheus.NewDesc("expertd_store_bytes",
		"Bytes the local store holds.", nil, nil)
	gossipDesc = prometheus.NewDesc("expertd_gossip_messages_total",
		"Gossip messages from peers by validation result (accepted, rejected, ignored).",
		[]string{"result"}, nil)
	catalogLimitedDesc = prometheus.NewDesc("expertd_catalog_rate_limited_total",
		"Catalog streams from peers refused for asking too often.", nil, nil)
	handoffFailuresDesc = prometheus.NewDesc("expertd_handoff_failures_total",
		"Hand-offs of an expert to the inference server that failed.", nil, nil)
	reloadsDesc = prometheus.NewDesc("expertd_handoff_reloads_total",
		"Adapters vLLM had lost (it restarted) whose load was queued again.", nil, nil)
	viewBytesDesc = prometheus.NewDesc("expertd_gossip_view_bytes",
		"Memory accounted for the experts known from the swarm.", nil, nil)
	evictionsDesc = prometheus.NewDesc("expertd_gossip_evictions_total",
		"Pairs of an expert and a provider evicted from the view to make room.", nil, nil)
	refusedDesc = prometheus.NewDesc("expertd_gossip_refused_total",
		"Announcements not recorded, by reason (provider_full, catalog_limit, view_full).", []string{"reason"}, nil)
	prefetchQueuedDesc = prometheus.NewDesc("expertd_prefetch_queued",
		"Experts waiting to be prefetched.", nil, nil)
)

// snapshotCollector exports a Snapshot, read once per scrape so the values
// of one scrape agree with each other.
type snapshotCollector func() Snapshot

func (c snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{peersDesc, expertsDesc, storeBytesDesc, gossipDesc, catalogLimitedDesc, handoffFailuresDesc, reloadsDesc,
		viewBytesDesc, evictionsDesc, refusedDesc, prefetchQueuedDesc} {
		ch <- d
	}
}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(peersDesc, float64(s.Peers))
	gauge(expertsDesc, float64(s.Stored), "stored")
	gauge(expertsDesc, float64(s.Pinned), "pinned")
	gauge(expertsDesc, float64(s.Remote), "remote")
	gauge(storeBytesDesc, float64(s.StoreBytes))
	counter(gossipDesc, s.GossipAccepted, "accepted")
	counter(gossipDesc, s.GossipRejected, "rejected")
	counter(gossipDesc, s.GossipIgnored, "ignored")
	counter(catalogLimitedDesc, s.CatalogRateLimited)
	counter(handoffFailuresDesc, s.HandoffFailures)
	counter(reloadsDesc, s.HandoffReloads)
	gauge(viewBytesDesc, float64(s.ViewBytes))
	counter(evictionsDesc, s.Evicted)
	counter(refusedDesc, s.ProviderFull, "provider_full")
	counter(refusedDesc, s.CatalogLimited, "catalog_limit")
	counter(refusedDesc, s.ViewFull, "view_full")
	gauge(prefetchQueuedDesc, float64(s.PrefetchQueued))
}
