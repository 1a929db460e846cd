package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/gossip/gossiptest"
)

// TestCatalogFloodDaemon attacks a daemon process as the audit of issue 12
// did, smaller: ten fresh identities connect to it, each serving a catalog
// of 2,000 entries as large as announcements may be, reconnecting every
// two seconds to have it pulled again, and flooding the announce topic,
// half of them under a fresh identity per message. An honest daemon
// publishes an expert during the flood: the victim must list it and fetch
// it, keep it listed, keep its view within gossip.max_view_memory and its
// resident memory within 128 MB. TestCatalogFloodDaemonFull is the
// full-size attack.
func TestCatalogFloodDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary, runs two daemons and a flood")
	}
	floodDaemon(t, floodSize{entries: 2_000, rounds: 3, messages: 5_000}, 128<<20)
}

// TestCatalogFloodDaemonFull is the audit's attack at full size, and for
// longer: ten identities with 10,000-entry catalogs, reconnecting 30 times
// each, and at least 50,000 topic messages. It runs only when named:
//
//	go test ./cmd/expertd -run 'TestCatalogFloodDaemonFull$' -v
//
// and reports the victim's peak resident memory (VmHWM).
func TestCatalogFloodDaemonFull(t *testing.T) {
	if !strings.Contains(flag.Lookup("test.run").Value.String(), "Full") {
		t.Skip("the full-size attack: run it with -run 'TestCatalogFloodDaemonFull$'")
	}
	floodDaemon(t, floodSize{entries: 10_000, rounds: 30, messages: 50_000}, 128<<20)
}

// floodSize is the size of an attack: catalog entries per identity, times
// each identity reconnects, topic messages sent in all.
type floodSize struct {
	entries, rounds int
	messages        uint64
}

func floodDaemon(t *testing.T, size floodSize, maxRSS int64) {
	const identities = 10
	root := t.TempDir()
	bin := daemontest.Build(t)
	victim := startQuiet(t, bin, root, "victim", "")
	honest := startQuiet(t, bin, root, "honest", victim.Addr)
	ctx := context.Background()
	testutil.Eventually(t, 20*time.Second, "the honest daemon connected", func() bool {
		ps, err := honest.Client().Peers(ctx)
		return err == nil && len(ps) > 0
	})
	idle := rss(t, victim.Cmd.Process.Pid)

	target := addrInfo(t, victim.Addr)
	var floods []*gossiptest.Flooder
	for _, fresh := range []bool{false, true} {
		f, err := gossiptest.NewFlooder(gossiptest.FloodOptions{
			Identities: identities / 2, Entries: size.entries, Large: true, Topic: true, FreshTopicIDs: fresh,
			Churn: 2 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.Close)
		floods = append(floods, f)
	}
	total := func(count func(*gossiptest.Flooder) uint64) (n uint64) {
		for _, f := range floods {
			n += count(f)
		}
		return n
	}
	// The victim's resident memory, sampled while the attack runs.
	var peak atomic.Int64
	defer sampleEvery(func() {
		if r, err := readRSS(victim.Cmd.Process.Pid); err == nil && r > peak.Load() {
			peak.Store(r)
		}
	})()
	start := time.Now()
	for _, f := range floods {
		if err := f.Attack(target); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 2*time.Minute, "the flood's first catalogs served", func() bool {
		return total((*gossiptest.Flooder).Served) >= uint64(identities*min(size.entries, 1_000))
	})

	// During the flood, the honest daemon publishes an expert.
	fixture, _ := filepath.Abs("../../compress/testdata/peft/python-lora-r16")
	published := time.Now()
	pub, err := honest.Client().Publish(ctx, api.PublishRequest{Path: fixture, Name: "honest"})
	if err != nil {
		t.Fatal(err)
	}
	listed := func() bool {
		e, err := victim.Client().Expert(ctx, pub.CID)
		return err == nil && len(e.Providers) > 0
	}
	testutil.Eventually(t, 60*time.Second, "the victim lists the honest expert", listed)
	listedIn := time.Since(published)
	if _, err := victim.Client().StartFetch(ctx, pub.CID); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, "the victim fetches the honest expert", func() bool {
		tr, err := victim.Client().Transfer(ctx, pub.CID)
		if err == nil && tr.State == api.StateFailed {
			t.Fatalf("fetch failed: %s", tr.Error)
		}
		return err == nil && tr.State == api.StateDone
	})
	fetchedIn := time.Since(published)

	// The flood goes on: catalogs pulled again and again, the topic.
	testutil.Eventually(t, 10*time.Minute, "the flood's rounds", func() bool {
		return total((*gossiptest.Flooder).Reconnects) >= uint64(identities*size.rounds) &&
			total((*gossiptest.Flooder).Published) >= size.messages
	})
	m := scrapeMetrics(t, victim.API)
	hwm := hwm(t, victim.Cmd.Process.Pid)
	t.Logf("flood of %d identities x %d large entries for %v: %d catalog entries served, %d reconnections, %d topic messages sent",
		identities, size.entries, time.Since(start).Round(time.Second), total((*gossiptest.Flooder).Served),
		total((*gossiptest.Flooder).Reconnects), total((*gossiptest.Flooder).Published))
	t.Logf("victim: view %.1f MB, %v experts, %v pairs evicted, %v refused (provider full), %v catalog pulls stopped at the limits, gossip %v accepted / %v ignored / %v rejected",
		m["expertd_gossip_view_bytes"]/(1<<20), m[`expertd_experts{state="remote"}`], m["expertd_gossip_evictions_total"],
		m[`expertd_gossip_refused_total{reason="provider_full"}`], m[`expertd_gossip_refused_total{reason="catalog_limit"}`],
		m[`expertd_gossip_messages_total{result="accepted"}`], m[`expertd_gossip_messages_total{result="ignored"}`],
		m[`expertd_gossip_messages_total{result="rejected"}`])
	t.Logf("victim Go memory: %.0f MB heap in use, next GC at %.0f MB, %.0f MB from the OS, %v goroutines",
		m["go_memstats_heap_inuse_bytes"]/(1<<20), m["go_memstats_next_gc_bytes"]/(1<<20), m["go_memstats_sys_bytes"]/(1<<20), m["go_goroutines"])
	t.Logf("honest expert listed %v and fetched %v after its publication", listedIn.Round(time.Millisecond), fetchedIn.Round(time.Millisecond))
	t.Logf("victim RSS: %d MB idle, %d MB peak sampled, %d MB peak (VmHWM); bound %d MB",
		idle>>20, peak.Load()>>20, hwm>>20, maxRSS>>20)
	if !listed() {
		t.Fatal("the honest expert was evicted during the flood")
	}
	if v := m["expertd_gossip_view_bytes"]; v > 16<<20 {
		t.Fatalf("view of %.0f bytes, gossip.max_view_memory is 16 MiB", v)
	}
	if hwm > maxRSS {
		t.Fatalf("victim peaked at %d MB resident, bound %d MB", hwm>>20, maxRSS>>20)
	}
}

// sampleEvery calls f every 100 ms until the function it returns is called.
func sampleEvery(f func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			f()
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// scrapeMetrics reads a daemon's metrics: value by name and labels.
func scrapeMetrics(t *testing.T, apiAddr string) map[string]float64 {
	t.Helper()
	m, err := metricsOf(apiAddr)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func metricsOf(apiAddr string) (map[string]float64, error) {
	resp, err := http.Get("http://" + apiAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if name, v, ok := strings.Cut(line, " "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			out[name] = f
		}
	}
	return out, sc.Err()
}

// startQuiet starts a daemon logging at info level, with env added to
// its environment.
func startQuiet(t *testing.T, bin, root, name, boot string, env ...string) *daemontest.Daemon {
	t.Helper()
	return daemontest.StartWith(t, bin, root, name, boot, daemontest.Options{LogLevel: "info", Env: env})
}

func addrInfo(t *testing.T, s string) peer.AddrInfo {
	t.Helper()
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		t.Fatal(err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		t.Fatal(err)
	}
	return *ai
}

// readRSS returns the resident memory of process pid (VmRSS).
func readRSS(pid int) (int64, error) { return procStatus(pid, "VmRSS:") }

func rss(t *testing.T, pid int) int64 {
	t.Helper()
	n, err := readRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// hwm returns the peak resident memory of process pid (VmHWM).
func hwm(t *testing.T, pid int) int64 {
	t.Helper()
	n, err := procStatus(pid, "VmHWM:")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// procStatus reads a "kB" field of /proc/pid/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
