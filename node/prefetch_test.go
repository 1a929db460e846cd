package node

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/expert"
	"github.com/expertd/expertd/node/gossip"
)

func newPeerID(t *testing.T) peer.ID {
	t.Helper()
	_, pk, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestKeepExpert: the view never evicts what this node stores, what a
// publisher trust.publishers names signed, and the wanted experts waiting
// in the prefetch queue; anything else may go, wanted or not.
func TestKeepExpert(t *testing.T) {
	listed, other := newPeerID(t), newPeerID(t)
	n := startNode(t, nil, map[string]any{
		"inference.want":   []string{"name=keep-*"},
		"trust.publishers": []string{listed.String()},
	})
	abs, _ := filepath.Abs(fixture)
	stored, err := n.Publish(context.Background(), api.PublishRequest{Path: abs, Name: "stored"})
	if err != nil {
		t.Fatal(err)
	}
	storedCID, _ := parseCID(stored.CID)
	entry := func(i int, name string, publisher peer.ID, signed bool) gossip.Entry {
		return gossip.Entry{Announcement: gossip.Announcement{CID: qcid(i), Metadata: expert.Metadata{
			Name: name,
		}, Publisher: publisher}, Signed: signed}
	}
	queued := entry(3, "keep-queued", other, false)
	// The node's prefetch worker runs: with source "x" held as running, it
	// leaves the queued item waiting (pop skips a running source's items)
	// instead of fetching it, failing and dropping it while the test looks.
	n.prefetchQ.mu.Lock()
	n.prefetchQ.running["x"] = true
	n.prefetchQ.mu.Unlock()
	n.prefetchQ.push(prefetchItem{cid: queued.CID, source: "x"}, time.Now())
	for _, tc := range []struct {
		what string
		e    gossip.Entry
		keep bool
	}{
		{"stored", gossip.Entry{Announcement: gossip.Announcement{CID: storedCID, Publisher: other}}, true},
		{"signed by a listed publisher", entry(1, "x", listed, true), true},
		{"an unsigned claim naming a listed publisher", entry(2, "x", listed, false), false},
		{"wanted and queued", queued, true},
		{"wanted, not queued", entry(4, "keep-late", listed, false), false},
		{"neither", entry(5, "x", other, true), false},
	} {
		if got := n.keepExpert(tc.e); got != tc.keep {
			t.Errorf("%s: kept %v", tc.what, got)
		}
	}
}

// TestSnapshotCountsView: the metrics count the experts known from the
// swarm without those this node stores.
func TestSnapshotCountsView(t *testing.T) {
	if testing.Short() {
		t.Skip("two libp2p nodes")
	}
	a := startNode(t, nil, nil)
	b := startNode(t, addr(a), nil)
	testutil.Eventually(t, 10*time.Second, "b connected to a", func() bool { return len(b.Peers()) > 0 })
	py, _ := filepath.Abs(fixture)
	ia3, _ := filepath.Abs("../compress/testdata/peft/c-ia3")
	var cids []string
	for _, p := range []string{py, ia3} {
		e, err := a.Publish(context.Background(), api.PublishRequest{Path: p})
		if err != nil {
			t.Fatal(err)
		}
		cids = append(cids, e.CID)
	}
	testutil.Eventually(t, 10*time.Second, "b knows both", func() bool { return known(b, cids[0]) && known(b, cids[1]) })
	waitFetched(t, b, cids[0])
	if s := b.snapshot(); s.Stored != 1 || s.Remote != 1 || s.ViewBytes <= 0 {
		t.Fatalf("snapshot %+v: want 1 stored, 1 remote", s)
	}
}
