package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/fetch"
	"github.com/expertd/expertd/node/gossip/gossiptest"
)

// TestPrefetchPoisonDaemon attacks a daemon's prefetching as the audit of
// issue 12 did: a peer whose publications the victim trusts announces
// 3,000 experts that match the victim's want rule, signed but fake, and
// accepts every fetch stream for them without ever answering. An honest
// daemon then publishes a real expert matching the rule: the victim must
// prefetch it within seconds, while its goroutines and its prefetch queue
// stay bounded and the fakes fail fast.
func TestPrefetchPoisonDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary, runs two daemons and an attacker")
	}
	const fakes = 3_000
	root := t.TempDir()
	bin := daemontest.Build(t)
	attacker, err := gossiptest.NewFlooder(gossiptest.FloodOptions{
		Identities: 1, Entries: fakes, Name: func(_, j int) string { return fmt.Sprintf("team-fake-%d", j) },
		Silent: []protocol.ID{fetch.ProtocolID},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(attacker.Close)
	honest := startQuiet(t, bin, root, "honest", "")
	ctx := context.Background()
	id, err := honest.Client().Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The victim trusts both publishers (the worst case: the attacker's
	// fakes are as trusted as the real one), and records all 3,000.
	victim := startQuiet(t, bin, root, "victim", honest.Addr,
		"EXPERTD_INFERENCE_WANT=name=team-*",
		"EXPERTD_TRUST_PUBLISHERS="+id.ID+","+attacker.IDs()[0].String(),
		"EXPERTD_GOSSIP_MAX_PER_PROVIDER=5000", "EXPERTD_GOSSIP_MAX_CATALOG=5000")
	testutil.Eventually(t, 20*time.Second, "the daemons connected", func() bool {
		ps, err := victim.Client().Peers(ctx)
		return err == nil && len(ps) > 0
	})
	idle := scrapeMetrics(t, victim.API)["go_goroutines"]

	// The victim's goroutines and prefetch queue, sampled during the attack.
	var mu sync.Mutex
	var maxGoroutines, maxQueued float64
	defer sampleEvery(func() {
		if m, err := metricsOf(victim.API); err == nil {
			mu.Lock()
			maxGoroutines, maxQueued = max(maxGoroutines, m["go_goroutines"]), max(maxQueued, m["expertd_prefetch_queued"])
			mu.Unlock()
		}
	})()

	start := time.Now()
	if err := attacker.Attack(addrInfo(t, victim.Addr)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "the victim prefetching fakes", func() bool { return attacker.Silenced() > 0 })
	fixture, _ := filepath.Abs("../../compress/testdata/peft/python-lora-r16")
	published := time.Now()
	pub, err := honest.Client().Publish(ctx, api.PublishRequest{Path: fixture, Name: "team-real"})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, "the victim prefetches the real expert", func() bool {
		e, err := victim.Client().Expert(ctx, pub.CID)
		return err == nil && e.Local
	})
	took := time.Since(published)
	if b, err := os.ReadFile(filepath.Join(root, "victim.log")); err == nil { // its prefetch, as the victim saw it
		for l := range strings.SplitSeq(string(b), "\n") {
			if strings.Contains(l, pub.CID) {
				t.Log(l)
			}
		}
	}
	// Let the attack run on until a few fakes have failed.
	testutil.Eventually(t, 2*time.Minute, "fakes failing", func() bool {
		return scrapeMetrics(t, victim.API)["expertd_prefetch_failures_total"] >= 2
	})
	m := scrapeMetrics(t, victim.API)
	elapsed := time.Since(start)
	mu.Lock()
	g, q := maxGoroutines, maxQueued
	mu.Unlock()
	failed := m["expertd_prefetch_failures_total"]
	t.Logf("%d fakes announced; %v remote experts known; real expert prefetched %v after its publication",
		fakes, m[`expertd_experts{state="remote"}`], took.Round(time.Millisecond))
	t.Logf("victim: goroutines %v idle, %v at most; prefetch queue %v at most; %v fakes failed in %v (%.1f s each, %d silent streams)",
		idle, g, q, failed, elapsed.Round(time.Second), elapsed.Seconds()/failed, attacker.Silenced())
	if took > 20*time.Second {
		t.Errorf("the real expert waited %v behind the fakes", took)
	}
	// Two workers, each on one fetch of one provider; a queue of 256; the
	// rest is the node's own and its connections'.
	if g > idle+100 {
		t.Errorf("goroutines rose from %v to %v during the attack", idle, g)
	}
	if q > 256 {
		t.Errorf("prefetch queue held %v", q)
	}
	if !strings.HasPrefix(pub.CID, "baf") {
		t.Fatalf("published %q", pub.CID)
	}
}
