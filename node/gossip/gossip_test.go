package gossip

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/expertd/expertd/internal/testutil"
	pb "github.com/expertd/expertd/proto"
)

// quiet: no periodic re-announce, so only Announce and the catalog
// exchange spread anything.
var quiet = Options{Reannounce: -1}

// TestPropagationLine: five nodes in a line: an announcement at one end
// reaches every other node.
func TestPropagationLine(t *testing.T) {
	nodes := make([]*node, 5)
	for i := range nodes {
		nodes[i] = newNode(t, quiet)
	}
	last := nodes[len(nodes)-1]
	newCIDs, cancel := last.s.View().Subscribe()
	defer cancel()
	for i := 1; i < len(nodes); i++ {
		connect(t, nodes[i-1].h, nodes[i].h)
	}
	// A node forwards others' messages to its mesh only, and a peer
	// grafted after the forward does not get it as gossip either: wait
	// for the meshes (TestFreshConnection covers the first hop).
	for i := 1; i < len(nodes); i++ {
		waitMesh(t, nodes[i-1], nodes[i].h.ID())
		waitMesh(t, nodes[i], nodes[i-1].h.ID())
	}

	src := nodes[0]
	a := testAnn(1, src.h.ID())
	a.Time = time.Time{} // Announce stamps it
	a.Provider = ""      // and this
	src.cat.add(a)
	start := time.Now()
	if err := src.s.Announce(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes[1:] {
		testutil.Eventually(t, 5*time.Second, fmt.Sprintf("node %d sees the expert", i+1), func() bool {
			return hasProvider(n.s.View(), a.CID, src.h.ID())
		})
	}
	t.Logf("4 hops in %v", time.Since(start))
	e, _ := last.s.View().Get(a.CID)
	if e.Name != a.Name || e.BaseModel != a.BaseModel || e.Rank != a.Rank || e.Publisher != src.h.ID() || e.Size != a.Size {
		t.Fatalf("metadata at the far end: %+v", e.Announcement)
	}
	select {
	case c := <-newCIDs:
		if c != a.CID {
			t.Fatalf("subscriber told of %v", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("subscriber not told")
	}
	if _, ok := src.s.View().Get(a.CID); ok {
		t.Fatal("a node's own announcement is in its view")
	}
	if st := last.s.Stats(); st.Accepted != 1 || st.Rejected != 0 {
		t.Fatalf("far end stats %+v", st)
	}
	if st := src.s.Stats(); st.Published != 1 {
		t.Fatalf("source stats %+v", st)
	}
}

// TestFreshConnection: an announcement published as soon as fresh peers
// are known on the topic, before any mesh forms, reaches them: the
// flood-publish pitfall.
func TestFreshConnection(t *testing.T) {
	src := newNode(t, quiet)
	peers := make([]*node, 3)
	ids := make([]peer.ID, len(peers))
	for i := range peers {
		peers[i] = newNode(t, quiet)
		ids[i] = peers[i].h.ID()
	}
	for _, n := range peers {
		connect(t, n.h, src.h)
	}
	waitTopicPeers(t, src.ps, ids...)
	t.Logf("mesh size at publication: %d (of %d)", src.mesh.size(), len(peers))
	a := testAnn(1, src.h.ID())
	if err := src.s.Announce(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	for i, n := range peers {
		testutil.Eventually(t, 5*time.Second, fmt.Sprintf("peer %d sees the expert", i), func() bool {
			return hasProvider(n.s.View(), a.CID, src.h.ID())
		})
		if st := n.s.Stats(); st.Accepted != 1 {
			t.Fatalf("peer %d learned it other than by gossip: %+v", i, st)
		}
	}
}

// TestLateJoinerPullsCatalog: a node that connects after the announcement,
// with re-announce off, learns the catalog at once through the exchange,
// including an expert that was never gossiped.
func TestLateJoinerPullsCatalog(t *testing.T) {
	a := newNode(t, Options{Reannounce: time.Hour})
	b := newNode(t, Options{Reannounce: time.Hour})
	connect(t, a.h, b.h)
	waitTopicPeers(t, a.ps, b.h.ID())

	gossiped := testAnn(1, a.h.ID())
	held := testAnn(2, a.h.ID()) // in the catalog, never announced
	a.cat.add(gossiped, held)
	if err := a.s.Announce(context.Background(), gossiped); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "b sees the announcement", func() bool {
		return hasProvider(b.s.View(), gossiped.CID, a.h.ID())
	})

	late := newNode(t, Options{Reannounce: time.Hour})
	start := time.Now()
	connect(t, late.h, a.h)
	testutil.Eventually(t, 5*time.Second, "the late node knows a's catalog", func() bool {
		return hasProvider(late.s.View(), gossiped.CID, a.h.ID()) && hasProvider(late.s.View(), held.CID, a.h.ID())
	})
	t.Logf("late joiner learned the catalog in %v", time.Since(start))
	// The pull is counted after its entries reach the view: wait for it.
	testutil.Eventually(t, 5*time.Second, "the late node counts the pull and its entries", func() bool {
		st := late.s.Stats()
		return st.CatalogAccepted >= 2 && st.CatalogPulls >= 1
	})
	testutil.Eventually(t, 5*time.Second, "a served its catalog", func() bool { return a.s.Stats().CatalogServed >= 2 })
}

// TestValidatorRejects: a rogue node publishes raw bytes on the topic,
// bypassing every local check; the victim accepts only the valid message.
func TestValidatorRejects(t *testing.T) {
	victim := newNode(t, quiet)
	honest := newNode(t, quiet)
	rh := newHost(t)
	rps := newPubSub(t, rh)
	rtopic, err := rps.Join(Topic)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, rh, victim.h)
	waitTopicPeers(t, rps, victim.h.ID())
	rogue := rh.ID()
	ctx := context.Background()
	publish := func(data []byte, opts ...pubsub.PubOpt) {
		t.Helper()
		if err := rtopic.Publish(ctx, data, opts...); err != nil {
			t.Fatal(err)
		}
	}
	stats := func() Stats { return victim.s.Stats() }

	valid := testAnn(1, rogue)
	publish(rawEncode(t, valid))
	testutil.Eventually(t, 10*time.Second, "valid message accepted", func() bool { return stats().Accepted == 1 })
	// The validator counts it before the service adds it to the view.
	testutil.Eventually(t, 10*time.Second, "valid announcement in the view", func() bool {
		return hasProvider(victim.s.View(), valid.CID, rogue)
	})

	// Ignored: a replay of the same announcement, and a stale one.
	publish(rawEncode(t, valid))
	stale := testAnn(2, rogue)
	stale.Time = time.Now().Add(-DefaultTTL - time.Minute)
	publish(rawEncode(t, stale))
	testutil.Eventually(t, 10*time.Second, "replay and stale ignored", func() bool { return stats().Ignored == 2 })

	// Rejected.
	badCID := toWire(testAnn(3, rogue))
	badCID.Cid = []byte("garbage")
	publish(mustMarshal(t, badCID))

	noPublisher := testAnn(4, rogue)
	noPublisher.Publisher = ""
	publish(rawEncode(t, noPublisher))

	forged := testAnn(5, honest.h.ID()) // claims the honest node provides it, signed by the rogue
	publish(rawEncode(t, forged))

	sk, pk, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := peer.IDFromPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	forged2 := testAnn(6, honest.h.ID()) // signed by yet another key
	forged2.Publisher = other
	publish(rawEncode(t, forged2), pubsub.WithSecretKeyAndPeerId(sk, other))

	future := testAnn(7, rogue)
	future.Time = time.Now().Add(time.Hour)
	publish(rawEncode(t, future))

	oversize := rawEncode(t, testAnn(8, rogue))
	oversize = protowire.AppendTag(oversize, 99, protowire.BytesType)
	oversize = protowire.AppendBytes(oversize, make([]byte, MaxMessageSize))
	publish(oversize)

	testutil.Eventually(t, 10*time.Second, "six rejections", func() bool { return stats().Rejected == 6 })
	for i := 3; i <= 8; i++ {
		if _, ok := victim.s.View().Get(testCID(i)); ok {
			t.Errorf("rejected expert %d is in the view", i)
		}
	}
	if _, ok := victim.s.View().Get(stale.CID); ok {
		t.Error("stale expert is in the view")
	}
	if st := stats(); st.Accepted != 1 || st.Ignored != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCatalogChecksEntries: a peer serving a catalog gets only entries
// it provides itself, checked like topic messages, into the view.
func TestCatalogChecksEntries(t *testing.T) {
	victim := newNode(t, quiet)
	rh := newHost(t)
	other := newHost(t).ID()
	rogue := rh.ID()

	valid := testAnn(1, rogue)
	notProvider := testAnn(2, other)
	stale := testAnn(3, rogue)
	stale.Time = time.Now().Add(-DefaultTTL - time.Minute)
	badCID := toWire(testAnn(4, rogue))
	badCID.Cid = []byte{1, 2, 3}
	cat := &pb.Catalog{Entries: []*pb.Announcement{toWire(valid), toWire(notProvider), toWire(stale), badCID}}
	rh.SetStreamHandler(CatalogProtocol, func(s network.Stream) {
		w := bufio.NewWriter(s)
		if _, err := pb.WriteFrame(w, cat, nil); err != nil || w.Flush() != nil {
			_ = s.Reset()
			return
		}
		_ = s.Close()
	})
	connect(t, rh, victim.h)
	testutil.Eventually(t, 5*time.Second, "catalog pulled", func() bool { return victim.s.Stats().CatalogPulls == 1 })
	if st := victim.s.Stats(); st.CatalogAccepted != 1 || st.CatalogRejected != 3 {
		t.Fatalf("stats %+v", st)
	}
	if !hasProvider(victim.s.View(), valid.CID, rogue) {
		t.Fatal("valid entry not in the view")
	}
	for i := 2; i <= 4; i++ {
		if _, ok := victim.s.View().Get(testCID(i)); ok {
			t.Errorf("bad entry %d in the view", i)
		}
	}
}

// TestCatalogBounds: an oversized frame or too many entries end the pull.
func TestCatalogBounds(t *testing.T) {
	victim := newNode(t, Options{Reannounce: -1, MaxCatalog: 3})
	for _, tc := range []struct {
		name  string
		write func(*bufio.Writer, peer.ID) error
	}{
		{"oversized frame", func(w *bufio.Writer, _ peer.ID) error {
			_, err := w.Write(protowire.AppendVarint(nil, maxCatalogFrame+1))
			return err
		}},
		{"too many entries", func(w *bufio.Writer, p peer.ID) error {
			cat := &pb.Catalog{}
			for i := range 5 {
				cat.Entries = append(cat.Entries, toWire(testAnn(100+i, p)))
			}
			_, err := pb.WriteFrame(w, cat, nil)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rh := newHost(t)
			rh.SetStreamHandler(CatalogProtocol, func(s network.Stream) {
				w := bufio.NewWriter(s)
				if err := tc.write(w, rh.ID()); err != nil || w.Flush() != nil {
					_ = s.Reset()
					return
				}
				_ = s.Close()
			})
			before := victim.s.Stats().CatalogPullErrors
			connect(t, rh, victim.h)
			testutil.Eventually(t, 5*time.Second, "pull failed", func() bool { return victim.s.Stats().CatalogPullErrors > before })
		})
	}
	if n := victim.s.View().Len(); n > 3 {
		t.Fatalf("view holds %d experts from a catalog bounded at 3", n)
	}
}

// TestProviderExpires: with re-announce off, a provider is forgotten
// after the TTL.
func TestProviderExpires(t *testing.T) {
	o := Options{TTL: 1500 * time.Millisecond, Reannounce: -1}
	a, b := newNode(t, o), newNode(t, o)
	connect(t, a.h, b.h)
	waitTopicPeers(t, a.ps, b.h.ID())
	ann := testAnn(1, a.h.ID())
	if err := a.s.Announce(context.Background(), ann); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "b sees it", func() bool { return hasProvider(b.s.View(), ann.CID, a.h.ID()) })
	seen := time.Now()
	testutil.Eventually(t, 5*time.Second, "b forgets it", func() bool {
		_, ok := b.s.View().Get(ann.CID)
		return !ok && b.s.View().Len() == 0 // read-time expiry and the sweep
	})
	if d := time.Since(seen); d < time.Second {
		t.Fatalf("forgotten after %v, TTL is %v", d, o.TTL)
	}
}

// TestReannounceRateLimited: the periodic re-announce reaches peers, and
// never faster than MaxPerSecond.
func TestReannounceRateLimited(t *testing.T) {
	const rate, experts = 10, 6
	b := newNode(t, quiet)
	h := newHost(t)
	ps := newPubSub(t, h)
	cat := &catalogList{}
	for i := range experts {
		cat.add(testAnn(i, h.ID()))
	}
	connect(t, h, b.h)
	s, err := New(h, ps, cat.get, Options{Reannounce: 50 * time.Millisecond, MaxPerSecond: rate, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	waitTopicPeers(t, ps, b.h.ID())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	testutil.Eventually(t, 10*time.Second, "two rounds of re-announcements received", func() bool {
		return b.s.Stats().Accepted >= 2*experts
	})
	elapsed := time.Since(start)
	published := s.Stats().Published
	if limit := uint64(elapsed.Seconds()*rate) + 1; published > limit {
		t.Fatalf("%d messages in %v: above %d/s", published, elapsed, rate)
	}
	if min := time.Duration(2*experts-1) * time.Second / rate; elapsed < min {
		t.Fatalf("%d messages received within %v, faster than %d/s", 2*experts, elapsed, rate)
	}
	for i := range experts {
		if !hasProvider(b.s.View(), testCID(i), h.ID()) {
			t.Fatalf("expert %d not in b's view", i)
		}
	}
}

func TestPacer(t *testing.T) {
	p := &pacer{interval: 20 * time.Millisecond}
	ctx := context.Background()
	start := time.Now()
	for range 6 {
		if err := p.wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("6 events in %v at one per 20ms", d)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	p2 := &pacer{interval: time.Hour}
	_ = p2.wait(cctx) // the first is free
	if err := p2.wait(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait on a done context: %v", err)
	}
}

// TestAnnounceErrors: invalid announcements are refused locally; a closed
// service refuses everything.
func TestAnnounceErrors(t *testing.T) {
	h := newHost(t)
	ps := newPubSub(t, h)
	s, err := New(h, ps, nil, Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(h, ps, nil, Options{}); err == nil {
		t.Fatal("second Service on one pubsub: no error")
	}
	ctx := context.Background()
	a := testAnn(1, h.ID())
	a.Publisher = ""
	if err := s.Announce(ctx, a); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no publisher: %v", err)
	}
	a.Publisher = h.ID()
	a.CID = cid.Undef
	if err := s.Announce(ctx, a); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no CID: %v", err)
	}
	if err := s.Announce(ctx, testAnn(1, h.ID())); err != nil {
		t.Fatalf("valid, no peers: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Announce(ctx, testAnn(2, h.ID())); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	// The topic is free again.
	s2, err := New(h, ps, nil, Options{Logger: testLogger()})
	if err != nil {
		t.Fatalf("New after Close: %v", err)
	}
	_ = s2.Close()
}
