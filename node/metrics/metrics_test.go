package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCounters(t *testing.T) {
	m := New(nil)
	m.BytesSent(100)
	m.BytesSent(20)
	m.BytesSent(-5) // ignored: a counter never goes down
	m.BytesReceived(7)
	m.BlockRejected()
	m.Materialized()
	m.Materialized()
	m.FetchDone(300*time.Millisecond, nil)
	m.FetchDone(2*time.Minute, nil)
	m.FetchDone(time.Second, errors.New("no providers"))
	m.FetchCanceled()
	m.FetchBusy("uplink")
	m.FetchBusy("uplink")
	m.FetchBusy("slots")

	want := `
# HELP expertd_fetch_busy_total Fetch streams from peers answered BUSY, by reason.
# TYPE expertd_fetch_busy_total counter
expertd_fetch_busy_total{reason="slots"} 1
expertd_fetch_busy_total{reason="uplink"} 2
# HELP expertd_blocks_rejected_total Blocks received that failed verification.
# TYPE expertd_blocks_rejected_total counter
expertd_blocks_rejected_total 1
# HELP expertd_bytes_received_total Expert bytes received from peers.
# TYPE expertd_bytes_received_total counter
expertd_bytes_received_total 7
# HELP expertd_bytes_sent_total Expert bytes served to peers.
# TYPE expertd_bytes_sent_total counter
expertd_bytes_sent_total 120
# HELP expertd_fetches_total Fetches finished, by result (ok, failed, canceled).
# TYPE expertd_fetches_total counter
expertd_fetches_total{result="canceled"} 1
expertd_fetches_total{result="failed"} 1
expertd_fetches_total{result="ok"} 2
# HELP expertd_materializations_total Experts written out as PEFT directories.
# TYPE expertd_materializations_total counter
expertd_materializations_total 2
# HELP expertd_fetch_duration_seconds Time taken by successful fetches.
# TYPE expertd_fetch_duration_seconds histogram
expertd_fetch_duration_seconds_bucket{le="0.05"} 0
expertd_fetch_duration_seconds_bucket{le="0.1"} 0
expertd_fetch_duration_seconds_bucket{le="0.25"} 0
expertd_fetch_duration_seconds_bucket{le="0.5"} 1
expertd_fetch_duration_seconds_bucket{le="1"} 1
expertd_fetch_duration_seconds_bucket{le="2.5"} 1
expertd_fetch_duration_seconds_bucket{le="5"} 1
expertd_fetch_duration_seconds_bucket{le="10"} 1
expertd_fetch_duration_seconds_bucket{le="30"} 1
expertd_fetch_duration_seconds_bucket{le="60"} 1
expertd_fetch_duration_seconds_bucket{le="120"} 2
expertd_fetch_duration_seconds_bucket{le="300"} 2
expertd_fetch_duration_seconds_bucket{le="600"} 2
expertd_fetch_duration_seconds_bucket{le="+Inf"} 2
expertd_fetch_duration_seconds_sum 120.3
expertd_fetch_duration_seconds_count 2
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want),
		"expertd_blocks_rejected_total", "expertd_bytes_received_total", "expertd_bytes_sent_total",
		"expertd_fetches_total", "expertd_materializations_total",
		"expertd_fetch_duration_seconds", "expertd_fetch_busy_total",
	); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotReadAtScrape(t *testing.T) {
	var calls atomic.Int32
	s := Snapshot{Peers: 3, Stored: 5, Pinned: 2, Remote: 9, StoreBytes: 1 << 20, GossipAccepted: 40, GossipRejected: 1, GossipIgnored: 4,
		CatalogRateLimited: 6, HandoffFailures: 13, HandoffReloads: 7, ViewBytes: 1 << 10, Evicted: 8, ProviderFull: 9, CatalogLimited: 10, ViewFull: 11,
		PrefetchQueued: 12}
	m := New(func() Snapshot { calls.Add(1); return s })
	want := `
# HELP expertd_peers Peers connected now.
# TYPE expertd_peers gauge
expertd_peers 3
# HELP expertd_experts Experts by state: stored (in the local store), pinned (stored and pinned), remote (known from the swarm only).
# TYPE expertd_experts gauge
expertd_experts{state="pinned"} 2
expertd_experts{state="remote"} 9
expertd_experts{state="stored"} 5
# HELP expertd_store_bytes Bytes the local store holds.
# TYPE expertd_store_bytes gauge
expertd_store_bytes 1.048576e+06
# HELP expertd_gossip_messages_total Gossip messages from peers by validation result (accepted, rejected, ignored).
# TYPE expertd_gossip_messages_total counter
expertd_gossip_messages_total{result="accepted"} 40
expertd_gossip_messages_total{result="ignored"} 4
expertd_gossip_messages_total{result="rejected"} 1
# HELP expertd_catalog_rate_limited_total Catalog streams from peers refused for asking too often.
# TYPE expertd_catalog_rate_limited_total counter
expertd_catalog_rate_limited_total 6
# HELP expertd_handoff_failures_total Hand-offs of an expert to the inference server that failed.
# TYPE expertd_handoff_failures_total counter
expertd_handoff_failures_total 13
# HELP expertd_handoff_reloads_total Adapters vLLM had lost (it restarted) whose load was queued again.
# TYPE expertd_handoff_reloads_total counter
expertd_handoff_reloads_total 7
# HELP expertd_gossip_view_bytes Memory accounted for the experts known from the swarm.
# TYPE expertd_gossip_view_bytes gauge
expertd_gossip_view_bytes 1024
# HELP expertd_gossip_evictions_total Pairs of an expert and a provider evicted from the view to make room.
# TYPE expertd_gossip_evictions_total counter
expertd_gossip_evictions_total 8
# HELP expertd_gossip_refused_total Announcements not recorded, by reason (provider_full, catalog_limit, view_full).
# TYPE expertd_gossip_refused_total counter
expertd_gossip_refused_total{reason="catalog_limit"} 10
expertd_gossip_refused_total{reason="provider_full"} 9
expertd_gossip_refused_total{reason="view_full"} 11
# HELP expertd_prefetch_queued Experts waiting to be prefetched.
# TYPE expertd_prefetch_queued gauge
expertd_prefetch_queued 12
`
	names := []string{"expertd_peers", "expertd_experts", "expertd_store_bytes", "expertd_gossip_messages_total",
		"expertd_catalog_rate_limited_total", "expertd_handoff_failures_total", "expertd_handoff_reloads_total", "expertd_gossip_view_bytes",
		"expertd_gossip_evictions_total", "expertd_gossip_refused_total", "expertd_prefetch_queued"}
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("snapshot called %d times for one scrape, want 1", n)
	}
	// Values are read again on the next scrape.
	s.Peers = 4
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(strings.Replace(want, "expertd_peers 3", "expertd_peers 4", 1)), names...); err != nil {
		t.Fatal(err)
	}
}

func TestLint(t *testing.T) {
	m := New(func() Snapshot { return Snapshot{} })
	problems, err := testutil.GatherAndLint(m.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "expertd_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

func TestHandler(t *testing.T) {
	m := New(func() Snapshot { return Snapshot{Peers: 2} })
	m.BytesSent(5)
	ts := httptest.NewServer(m.Handler())
	defer ts.Close()
	resp, err := http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"expertd_peers 2", "expertd_bytes_sent_total 5", "go_goroutines ", "process_"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.BytesSent(1)
	m.BytesReceived(1)
	m.FetchDone(time.Second, nil)
	m.FetchCanceled()
	m.BlockRejected()
	m.Materialized()
}
