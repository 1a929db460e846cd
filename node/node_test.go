package node

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/viper"
	"go.uber.org/goleak"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/config"
	"github.com/expertd/expertd/node/unixfs"
)

const fixture = "../compress/testdata/peft/python-lora-r16"

// startNode runs an in-process node on loopback that bootstraps to boot.
func startNode(t *testing.T, boot []string, set map[string]any) *Node {
	t.Helper()
	n := newNode(t, boot, set)
	testutil.Serve(t, n.Serve)
	return n
}

// newNode makes an in-process node on loopback that bootstraps to boot,
// closed when the test ends; it is not served yet.
func newNode(t *testing.T, boot []string, set map[string]any) *Node {
	t.Helper()
	v := viper.New()
	v.Set("data_dir", t.TempDir())
	v.Set("api.listen", testutil.FreeAddr(t))
	v.Set("p2p.listen", []string{"/ip4/127.0.0.1/tcp/0"})
	v.Set("p2p.mdns", false)
	v.Set("p2p.nat_port_map", false)
	v.Set("p2p.dht.private_addrs", true)
	v.Set("p2p.dht.mode", "server")
	v.Set("p2p.bootstrap", boot)
	for k, val := range set {
		v.Set(k, val)
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cfg, err := config.Load(v, "")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.Default()
	}
	mesh := &meshTracer{mesh: map[peer.ID]bool{}}
	n, err := New(context.Background(), cfg, log, WithPubSubOptions(pubsub.WithEventTracer(mesh)))
	if err != nil {
		t.Fatal(err)
	}
	meshes.Store(n, mesh)
	t.Cleanup(func() {
		n.Close()
		meshes.Delete(n)
	})
	return n
}

func addr(n *Node) []string { return n.Identity().Addrs[:1] }

func known(n *Node, c string) bool {
	e, err := n.Expert(c)
	return err == nil && len(e.Providers) > 0
}

func waitFetched(t *testing.T, n *Node, c string) {
	t.Helper()
	if _, err := n.StartFetch(c); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, "fetch of "+c, func() bool {
		tr, err := n.Transfer(c)
		if err == nil && tr.State == api.StateFailed {
			t.Fatalf("fetch failed: %s", tr.Error)
		}
		return err == nil && tr.State == api.StateDone
	})
}

// TestSwarm: five nodes in a line; a publication on one end is seen by
// all, fetched at the far end, learnt by a late joiner, and found through
// the DHT by a node gossip never told.
func TestSwarm(t *testing.T) {
	if testing.Short() {
		t.Skip("five libp2p nodes")
	}
	noReannounce := map[string]any{"gossip.reannounce": "1h", "gossip.ttl": "2h"}
	nodes := []*Node{startNode(t, nil, noReannounce)}
	for i := 1; i < 5; i++ {
		nodes = append(nodes, startNode(t, addr(nodes[i-1]), noReannounce))
	}
	// Running daemons have had their mesh long since (and re-announce).
	waitMesh(t, nodes...)
	abs, _ := filepath.Abs(fixture)
	pub, err := nodes[0].Publish(context.Background(), api.PublishRequest{Path: abs, Name: "python"})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes[1:] {
		testutil.Eventually(t, 10*time.Second, "node "+string(rune('1'+i))+" sees the announcement", func() bool { return known(n, pub.CID) })
	}

	far := nodes[4]
	waitFetched(t, far, pub.CID)
	e, err := far.Expert(pub.CID)
	if err != nil || !e.Local || e.Name != "python" || e.PeftType != "LORA" {
		t.Fatalf("fetched expert %+v %v", e, err)
	}
	if _, err := far.Materialize(context.Background(), pub.CID, api.MaterializeRequest{Dir: filepath.Join(t.TempDir(), "out")}); err != nil {
		t.Fatal(err)
	}

	// A late joiner connected to node 2 learns node 2's... and node 0's
	// experts only if they reach it; it pulls catalogs of its neighbours.
	late := startNode(t, addr(nodes[4]), noReannounce)
	testutil.Eventually(t, 10*time.Second, "late joiner learns the catalog", func() bool { return known(late, pub.CID) })

	// A node bootstrapped to node 2, which does not hold the expert: gossip
	// has nothing for it (no re-announce), so its fetch must ask the DHT.
	lone := startNode(t, addr(nodes[2]), noReannounce)
	if known(lone, pub.CID) {
		t.Fatal("gossip already told the lone node; the DHT path is not exercised")
	}
	waitFetched(t, lone, pub.CID)
}

// TestCloseReleasesGoroutines: a node started, served and closed leaves no
// goroutine behind.
func TestCloseReleasesGoroutines(t *testing.T) {
	base := goleak.IgnoreCurrent()
	t.Run("node", func(t *testing.T) { startNode(t, nil, nil) })
	if err := goleak.Find(base); err != nil {
		t.Fatal(err)
	}
}

// TestFetchRetriesUntilProviderAppears: a fetch started before anyone
// provides the expert keeps trying (with backoff) and completes once a
// provider publishes it.
func TestFetchRetriesUntilProviderAppears(t *testing.T) {
	if testing.Short() {
		t.Skip("two libp2p nodes")
	}
	a := startNode(t, nil, nil)
	b := startNode(t, addr(a), nil)
	abs, _ := filepath.Abs(fixture)
	src, err := compress.Load(abs, "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, _, err := compress.Encode(&buf, src); err != nil {
		t.Fatal(err)
	}
	l, err := unixfs.Build(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.StartFetch(l.Root.String()); err != nil {
		t.Fatal(err)
	}
	// No provider anywhere: the fetch goes on asking the DHT.
	waitPhase(t, b, l.Root.String(), "looking for providers: gossip, DHT (attempt 1 of 5)")
	pub, err := a.Publish(context.Background(), api.PublishRequest{Path: abs, Name: "python"})
	if err != nil || pub.CID != l.Root.String() {
		t.Fatalf("published %s (%v), expected %s", pub.CID, err, l.Root)
	}
	testutil.Eventually(t, 30*time.Second, "fetch completes after the provider appears", func() bool {
		tr, err := b.Transfer(pub.CID)
		return err == nil && tr.State == api.StateDone
	})
}
