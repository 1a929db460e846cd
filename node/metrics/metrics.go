// Package metrics exports the node's Prometheus metrics: counters the daemon
// bumps as it works, and gauges read from the node at scrape time.
//
// The registry is the package's own (not prometheus.DefaultRegisterer) and
// holds these metrics plus the standard go_* and process_* ones:
//
//	| Metric                                  | Type      | Meaning |
//	|-----------------------------------------|-----------|---------|
//	| `expertd_peers`                         | gauge     | Peers connected now. |
//	| `expertd_experts{state}`                | gauge     | Experts by state: `stored` (in the local store, pinned ones included), `pinned` (stored and pinned), `remote` (known from the swarm, not stored). |
//	| `expertd_store_bytes`                   | gauge     | Bytes the local store holds. |
//	| `expertd_bytes_sent_total`              | counter   | Expert bytes served to peers. |
//	| `expertd_bytes_received_total`          | counter   | Expert bytes received from peers. |
//	| `expertd_fetches_total{result}`         | counter   | Fetches finished, by `result`: `ok`, `failed` or `canceled` (DELETE /v1/fetch/{cid}). |
//	| `expertd_fetch_duration_seconds`        | histogram | Time taken by successful fetches; buckets from 0.05 s to 10 min. |
//	| `expertd_blocks_rejected_total`         | counter   | Blocks received from peers that failed verification. |
//	| `expertd_fetch_busy_total{reason}`      | counter   | Fetch streams from peers answered BUSY, by `reason`: `slots` (every upload slot taken), `uplink` (leaves to send for others of the expert), `share` (a stream given many leaves made way), `choked` (its slot went to a peer that waited), `streams` (too many streams open), `watches` (too many watch streams). |
//	| `expertd_gossip_messages_total{result}` | counter   | Gossip messages from peers, by validation `result`: `accepted`, `rejected` (invalid; the sender is penalized) or `ignored`. |
//	| `expertd_materializations_total`        | counter   | Experts written out as PEFT directories. |
//	| `expertd_handoff_failures_total`        | counter   | Hand-offs of an expert to the inference server (adapter directory or vLLM load/unload) that failed. |
//	| `expertd_handoff_reloads_total`         | counter   | Adapters vLLM had lost (it restarted) whose load was queued again. |
//	| `expertd_catalog_rate_limited_total`    | counter   | Catalog streams from peers refused for asking too often. |
//	| `expertd_gossip_view_bytes`             | gauge     | Memory accounted for the experts known from the swarm (bounded by `gossip.max_view_memory`). |
//	| `expertd_gossip_evictions_total`        | counter   | Pairs of an expert and a provider evicted from the view to make room. |
//	| `expertd_gossip_refused_total{reason}`  | counter   | Announcements not recorded, by `reason`: `provider_full` (the provider holds `gossip.max_per_provider` experts), `catalog_limit` (catalog entries over `gossip.catalog_rate`, or from a peer at `gossip.max_per_provider`: the pull stops there), `view_full` (nothing left to evict). |
//	| `expertd_prefetch_queued`               | gauge     | Experts waiting to be prefetched. |
//	| `expertd_prefetch_failures_total`       | counter   | Prefetches that failed (no provider answered, say). |
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Snapshot is the node's state read at scrape time. Counters that another
// package keeps (gossip counts its own messages) come in here too, so they
// are exported without being counted twice.
type Snapshot struct {
	Peers int
	// Experts: Stored counts every expert in the local store, Pinned those
	// of them that are pinned, Remote those known only from the swarm.
	Stored, Pinned, Remote int
	StoreBytes             int64
	// Gossip messages from peers by validation outcome, since start
	// (gossip.Stats Accepted, Rejected, Ignored).
	GossipAccepted, GossipRejected, GossipIgnored uint64
	// Catalog streams refused by the per-peer limit
	// (gossip.Stats.CatalogRateLimited), since start.
	CatalogRateLimited uint64
	// Hand-offs to the inference server that failed (an adapter directory
	// not written, a vLLM load or unload refused) and adapters reloaded into
	// vLLM after it lost them (handoff.Stats.Reloads), since start.
	HandoffFailures, HandoffReloads uint64
	// The view's accounted memory, its evictions and what it refused
	// since start (gossip.ViewCounts, gossip.Stats.CatalogEntriesLimited).
	ViewBytes                             int64
	Evicted, ProviderFull, CatalogLimited uint64
	ViewFull                              uint64
	// Experts waiting to be prefetched.
	PrefetchQueued int
}

// FetchBuckets are the fetch duration histogram's upper bounds in seconds:
// from a small expert on a LAN to a large one over a slow link.
var FetchBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// Metrics holds the node's collectors in a registry of its own. A nil
// *Metrics is valid and counts nothing, so code that takes one works
// without metrics. Methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	bytesSent, bytesReceived prometheus.Counter
	fetchesOK, fetchesFailed prometheus.Counter
	fetchesCanceled          prometheus.Counter
	fetchDuration            prometheus.Histogram
	blocksRejected           prometheus.Counter
	materializations         prometheus.Counter
	prefetchFailures         prometheus.Counter
	fetchBusy                *prometheus.CounterVec
}

// New returns the node's metrics. snapshot is called once per scrape, from
// the scraping goroutine, and must be safe for concurrent use and quick; a
// nil snapshot leaves out the gauges and gossip counters.
func New(snapshot func() Snapshot) *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	fetches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "expertd_fetches_total",
		Help: "Fetches finished, by result (ok, failed, canceled).",
	}, []string{"result"})
	m := &Metrics{
		reg:             prometheus.NewRegistry(),
		bytesSent:       counter("expertd_bytes_sent_total", "Expert bytes served to peers."),
		bytesReceived:   counter("expertd_bytes_received_total", "Expert bytes received from peers."),
		fetchesOK:       fetches.WithLabelValues("ok"),
		fetchesFailed:   fetches.WithLabelValues("failed"),
		fetchesCanceled: fetches.WithLabelValues("canceled"),
		fetchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "expertd_fetch_duration_seconds",
			Help:    "Time taken by successful fetches.",
			Buckets: FetchBuckets,
		}),
		blocksRejected:   counter("expertd_blocks_rejected_total", "Blocks received that failed verification."),
		materializations: counter("expertd_materializations_total", "Experts written out as PEFT directories."),
		prefetchFailures: counter("expertd_prefetch_failures_total", "Prefetches that failed."),
		fetchBusy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "expertd_fetch_busy_total",
			Help: "Fetch streams from peers answered BUSY, by reason.",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.bytesSent, m.bytesReceived, fetches, m.fetchDuration,
		m.blocksRejected, m.materializations, m.prefetchFailures, m.fetchBusy,
	)
	if snapshot != nil {
		m.reg.MustRegister(snapshotCollector(snapshot))
	}
	return m
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registerer lets other components (libp2p's own metrics, say) add their
// collectors to the same registry.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// BytesSent counts n expert bytes served to a peer.
func (m *Metrics) BytesSent(n int) {
	if m != nil && n > 0 {
		m.bytesSent.Add(float64(n))
	}
}

// BytesReceived counts n expert bytes received from a peer.
func (m *Metrics) BytesReceived(n int) {
	if m != nil && n > 0 {
		m.bytesReceived.Add(float64(n))
	}
}

// FetchDone counts a finished fetch; the duration d of a successful one
// (err == nil) goes into the histogram.
func (m *Metrics) FetchDone(d time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.fetchesFailed.Inc()
		return
	}
	m.fetchesOK.Inc()
	m.fetchDuration.Observe(d.Seconds())
}

// FetchCanceled counts a fetch canceled before it ended.
func (m *Metrics) FetchCanceled() {
	if m != nil {
		m.fetchesCanceled.Inc()
	}
}

// BlockRejected counts a received block that failed verification.
func (m *Metrics) BlockRejected() {
	if m != nil {
		m.blocksRejected.Inc()
	}
}

// Materialized counts an expert written out as a PEFT directory.
func (m *Metrics) Materialized() {
	if m != nil {
		m.materializations.Inc()
	}
}

// PrefetchFailed counts a failed prefetch.
func (m *Metrics) PrefetchFailed() {
	if m != nil {
		m.prefetchFailures.Inc()
	}
}

// FetchBusy counts a fetch stream from a peer answered BUSY, and why (a
// fetch.Busy* reason).
func (m *Metrics) FetchBusy(reason string) {
	if m != nil {
		m.fetchBusy.WithLabelValues(reason).Inc()
	}
}
