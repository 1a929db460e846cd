package node

import (
	"context"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/node/gossip"
)

// After a restart the node refuses replays of versions older than those it
// stores, as it did before: the lines it holds are known to gossip from
// the store as soon as the node is made, before it announces anything or
// hears a catalog (dropping that passed every test, issue 19).
func TestRestartKnowsStoredLines(t *testing.T) {
	dir := t.TempDir()
	set := map[string]any{"data_dir": dir}
	first := newNode(t, nil, set)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- first.Serve(ctx) }()
	publishAs(t, first, retrained(t, 32), "team-sql")
	v2 := publishAs(t, first, retrained(t, 33), "team-sql")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	m, err := first.store.Get(cid.MustParse(v2.CID))
	if err != nil {
		t.Fatal(err)
	}
	a, err := gossip.OpenPublication(m.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	again := newNode(t, nil, set) // not served: nothing announced or heard yet
	if v, ok := again.gossip.LatestVersion(gossip.LineOf(a)); !ok || v != 2 {
		t.Fatalf("after a restart the line %v is at version %d (known %v), want 2 from the store", gossip.LineOf(a), v, ok)
	}
}
