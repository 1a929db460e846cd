package gossip_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/expert"
	"github.com/expertd/expertd/node/gossip"
	"github.com/expertd/expertd/node/gossip/gossiptest"
)

// startService runs a gossip Service on a fresh loopback host until the
// test ends, with the catalog of experts catalog names, if any.
func startService(t *testing.T, o gossip.Options, catalog ...cid.Cid) (host.Host, *gossip.Service) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	ps, err := gossip.NewPubSub(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	var anns []gossip.Announcement
	for i, c := range catalog {
		anns = append(anns, gossip.Announcement{CID: c, Metadata: expert.Metadata{
			Name: fmt.Sprint("honest-", i), PeftType: "LORA", BaseModel: "m", Size: 1000,
		}, Publisher: h.ID()})
	}
	s, err := gossip.New(h, ps, func() []gossip.Announcement { return anns }, o)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return h, s
}

// TestCatalogFlood: ten fresh identities serve large catalogs to a node,
// reconnect to have them pulled again, and flood its topic, half of them
// under a fresh identity per message. An honest peer's new expert,
// announced during the flood, is in the node's view within seconds and
// stays there; the view stays within its bounds, and no identity holds
// more than MaxPerProvider experts in it. (cmd/expertd's
// TestCatalogFloodDaemon measures a daemon's memory under this attack.)
func TestCatalogFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("a flood")
	}
	const (
		identities  = 10
		perProvider = 100
		viewBytes   = 2 << 20
	)
	victimHost, victim := startService(t, gossip.Options{Reannounce: -1, MaxPerProvider: perProvider, MaxViewBytes: viewBytes})
	target := peer.AddrInfo{ID: victimHost.ID(), Addrs: victimHost.Addrs()}
	var floods []*gossiptest.Flooder
	for _, fresh := range []bool{false, true} {
		f, err := gossiptest.NewFlooder(gossiptest.FloodOptions{
			Identities: identities / 2, Entries: 300, Large: true, Topic: true, FreshTopicIDs: fresh, Churn: 3 * time.Second, TopicRate: 200,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.Close)
		if err := f.Attack(target); err != nil {
			t.Fatal(err)
		}
		floods = append(floods, f)
	}
	total := func(count func(*gossiptest.Flooder) uint64) (n uint64) {
		for _, f := range floods {
			n += count(f)
		}
		return n
	}
	testutil.Eventually(t, 60*time.Second, "the flood under way", func() bool {
		st := victim.Stats()
		return st.CatalogPulls+st.CatalogPullErrors >= identities && total((*gossiptest.Flooder).Published) > 500
	})

	// An honest node that re-announces its catalog every second, as any
	// node does every gossip.reannounce: a message the flood crowds out of
	// the victim's validation queue comes again.
	h, _ := mh.Sum([]byte("honest expert"), mh.SHA2_256, -1)
	honestCID := cid.NewCidV1(cid.DagProtobuf, h)
	honestHost, _ := startService(t, gossip.Options{Reannounce: time.Second, MaxPerSecond: 100}, honestCID)
	if err := honestHost.Connect(context.Background(), target); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	testutil.Eventually(t, 45*time.Second, "the honest expert in the victim's view", func() bool { return victim.View().Has(honestCID) })
	took := time.Since(start)
	testutil.Eventually(t, 2*time.Minute, "the flood's rounds", func() bool {
		return total((*gossiptest.Flooder).Reconnects) >= 2*identities && total((*gossiptest.Flooder).Published) > 4000
	})
	if !victim.View().Has(honestCID) {
		t.Fatal("the honest expert was evicted")
	}
	c, st := victim.View().Counts(), victim.Stats()
	t.Logf("honest expert seen %v after it connected; flood: %d catalog entries served, %d reconnections, %d topic messages; view: %+v; stats: %+v",
		took.Round(time.Millisecond), total((*gossiptest.Flooder).Served), total((*gossiptest.Flooder).Reconnects), total((*gossiptest.Flooder).Published), c, st)
	if c.Bytes > viewBytes || c.Evicted == 0 {
		t.Fatalf("view of %d bytes (bound %d), %d evicted", c.Bytes, viewBytes, c.Evicted)
	}
	held := map[peer.ID]int{}
	victim.View().Scan(func(e gossip.Entry) bool {
		held[e.Provider]++ // the provider of the metadata held: one per expert here
		return true
	})
	for _, f := range floods[:1] {
		for _, id := range f.IDs() {
			if held[id] > perProvider {
				t.Fatalf("%s holds %d experts, bound %d", id, held[id], perProvider)
			}
		}
	}
}
