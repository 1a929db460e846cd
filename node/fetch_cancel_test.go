package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/unixfs"
)

// unknownCID is an expert nobody provides.
const unknownCID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"

// transferOf returns n's transfer of c, failing the test without one.
func transferOf(t *testing.T, n *Node, c string) api.Transfer {
	t.Helper()
	tr, err := n.Transfer(c)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// waitPhase waits until n's fetch of c runs in phase.
func waitPhase(t *testing.T, n *Node, c, phase string) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, "phase "+phase, func() bool {
		tr := transferOf(t, n, c)
		if tr.State != api.StateRunning {
			t.Fatalf("fetch ended before phase %q: %+v", phase, tr)
		}
		return tr.Phase == phase
	})
}

// A fetch of an expert nobody provides says where it looks, and fails
// after fetch.find_timeout with an error that says what it asked and does
// not repeat the CID (the transfer has it).
func TestFetchFindTimeout(t *testing.T) {
	n := startNode(t, nil, map[string]any{"fetch.find_timeout": "2s"})
	if _, err := n.StartFetch(unknownCID); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, n, unknownCID, "looking for providers: gossip, DHT (attempt 1 of 5)")
	testutil.Eventually(t, 30*time.Second, "the fetch fails", func() bool { return transferOf(t, n, unknownCID).State != api.StateRunning })
	tr := transferOf(t, n, unknownCID)
	want := "no provider answered within 2s: none known from gossip, none found in the DHT"
	if tr.State != api.StateFailed || !strings.HasPrefix(tr.Error, want) || tr.Phase != "" {
		t.Fatalf("ended %+v, want failed with %q", tr, want)
	}
	if strings.Contains(tr.Error, unknownCID) {
		t.Errorf("the error repeats the CID: %q", tr.Error)
	}
}

// DELETE /v1/fetch/{cid} cancels a running fetch, also one waiting for a
// fetch slot; a later fetch starts anew. A CID without a fetch is not
// found.
func TestFetchCancel(t *testing.T) {
	n := startNode(t, nil, nil)
	ctx := context.Background()
	if _, err := n.CancelFetch(ctx, unknownCID); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("cancel without a fetch: %v", err)
	}
	// Three fetches take the slots; a fourth waits for one.
	var cids []string
	for i := range cap(n.slots) + 1 {
		c := testCID(t, i).String()
		if _, err := n.StartFetch(c); err != nil {
			t.Fatal(err)
		}
		cids = append(cids, c)
	}
	var waiting, running []string
	testutil.Eventually(t, 30*time.Second, "three fetches searching and one waiting for a slot", func() bool {
		waiting, running = nil, nil
		for _, c := range cids {
			switch transferOf(t, n, c).Phase {
			case "waiting for a fetch slot":
				waiting = append(waiting, c)
			case "looking for providers: gossip, DHT (attempt 1 of 5)":
				running = append(running, c)
			}
		}
		return len(waiting) == 1 && len(running) == cap(n.slots)
	})
	for _, c := range []string{waiting[0], running[0]} {
		tr, err := n.CancelFetch(ctx, c)
		if err != nil || tr.State != api.StateCanceled || tr.Error != "canceled" || tr.Phase != "" {
			t.Fatalf("cancel %s: %+v %v", c, tr, err)
		}
		if tr := transferOf(t, n, c); tr.State != api.StateCanceled {
			t.Fatalf("after cancel: %+v", tr)
		}
	}
	if tr := transferOf(t, n, running[1]); tr.State != api.StateRunning {
		t.Fatalf("another fetch: %+v", tr)
	}
	if tr, err := n.StartFetch(running[0]); err != nil || tr.State != api.StateRunning {
		t.Fatalf("fetch again after cancel: %+v %v", tr, err)
	}
}

// A canceled fetch keeps the leaves it verified: the store holds them, and
// fetching again completes.
func TestFetchCancelKeepsLeaves(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and compresses a 64 MB adapter")
	}
	pub, adapter := slowPublisher(t)
	fetcher := startNode(t, addr(pub), nil)
	waitMesh(t, pub, fetcher)
	e, err := pub.Publish(context.Background(), api.PublishRequest{Path: adapter, Name: "big", Density: 0.6667})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "fetcher hears of the expert", func() bool { return known(fetcher, e.CID) })
	if _, err := fetcher.StartFetch(e.CID); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "a leaf verified", func() bool {
		tr := transferOf(t, fetcher, e.CID)
		return tr.Bytes > 0 && tr.State == api.StateRunning
	})
	if tr := transferOf(t, fetcher, e.CID); tr.Phase != "fetching from 1 provider" {
		t.Errorf("phase while receiving: %q", tr.Phase)
	}
	tr, err := fetcher.CancelFetch(context.Background(), e.CID)
	if err != nil || tr.State != api.StateCanceled || tr.Bytes == 0 || tr.Bytes >= tr.Total {
		t.Fatalf("canceled: %+v %v; want a canceled fetch holding some leaves", tr, err)
	}
	c, err := api.ParseCID(e.CID)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := pub.store.Open(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	layout, err := unixfs.Build(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, l := range layout.Leaves {
		if ok, _ := fetcher.store.HasBlock(l.Cid); ok {
			held++
		}
	}
	if held == 0 || held == len(layout.Leaves) {
		t.Fatalf("the store holds %d of %d leaves after the cancel", held, len(layout.Leaves))
	}
	waitFetched(t, fetcher, e.CID)
}
