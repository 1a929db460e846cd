package node

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
)

const fixtureF16 = "../compress/testdata/peft/python-lora-r16-f16"

// TestMergeAcrossNodes: A publishes two experts; B merges them by CID
// through its API (fetching both from A) and publishes the result; A
// learns of the merged expert with its provenance, the method and the
// parents' CIDs, verified against B's signature.
func TestMergeAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("two libp2p nodes")
	}
	a := startNode(t, nil, nil)
	b := startNode(t, addr(a), nil)
	waitMesh(t, a, b)
	ctx := context.Background()
	parents := publishParents(t, a)
	for _, c := range parents {
		testutil.Eventually(t, 10*time.Second, "B learns of "+c, func() bool { return known(b, c) })
	}

	client := api.NewClient(b.apiLn.Addr().String(), "")
	merged, err := client.Merge(ctx, api.MergeRequest{Parents: parents, Method: compress.MergeTIES, Name: "python-both", Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	bid := b.Identity().ID
	if !merged.Local || !merged.Signed || !merged.Pinned || merged.Publisher != bid || merged.Name != "python-both" || merged.PeftType != "LORA" {
		t.Fatalf("merged: %+v", merged)
	}
	wantMerge := api.Merge{Method: compress.MergeTIES, Parents: parents}
	if merged.Merge == nil || merged.Merge.Method != wantMerge.Method || !slices.Equal(merged.Merge.Parents, parents) {
		t.Fatalf("B's merged expert has provenance %+v, want %+v", merged.Merge, wantMerge)
	}
	for _, c := range parents { // B fetched the parents to merge them
		if e, err := b.Expert(c); err != nil || !e.Local {
			t.Fatalf("parent %s on B: %+v %v", c, e, err)
		}
	}

	testutil.Eventually(t, 10*time.Second, "A learns of the merged expert", func() bool { return known(a, merged.CID) })
	seen, err := a.Expert(merged.CID)
	if err != nil {
		t.Fatal(err)
	}
	if !seen.Signed || seen.Publisher != bid || seen.Merge == nil || seen.Merge.Method != compress.MergeTIES || !slices.Equal(seen.Merge.Parents, parents) {
		t.Fatalf("A sees %+v (provenance %+v), want B's signed merge of %v", seen, seen.Merge, parents)
	}
	// A fetches it and finds the same provenance in the container too.
	waitFetched(t, a, merged.CID)
	if e, err := a.Expert(merged.CID); err != nil || !e.Local || e.Merge == nil || !slices.Equal(e.Merge.Parents, parents) {
		t.Fatalf("fetched merged expert on A: %+v %v", e, err)
	}
}

// publishParents publishes two LoRA experts of one base on n (the python
// fixture in F32 and in F16) and returns their CIDs.
func publishParents(t *testing.T, n *Node) []string {
	t.Helper()
	var cids []string
	for _, p := range []struct{ dir, name string }{{fixture, "python"}, {fixtureF16, "python-f16"}} {
		abs, _ := filepath.Abs(p.dir)
		e, err := n.Publish(context.Background(), api.PublishRequest{Path: abs, Name: p.name})
		if err != nil {
			t.Fatal(err)
		}
		cids = append(cids, e.CID)
	}
	return cids
}

// TestMergeRefusals: requests that cannot be merged are refused before
// anything is fetched or stored: bad parents or options, and parents over
// the node's merge memory.
func TestMergeRefusals(t *testing.T) {
	n := startNode(t, nil, nil)
	ctx := context.Background()
	parents := publishParents(t, n)
	for _, c := range []struct {
		what string
		r    api.MergeRequest
		want error
		msg  string
	}{
		{"one parent", api.MergeRequest{Parents: parents[:1]}, api.ErrBadRequest, "2 to 64 parents"},
		{"a parent that is no CID", api.MergeRequest{Parents: []string{parents[0], "nope"}}, api.ErrBadRequest, "parent 2"},
		{"an unknown method", api.MergeRequest{Parents: parents, Method: "avg"}, api.ErrBadRequest, `method "avg"`},
		{"three weights for two", api.MergeRequest{Parents: parents, Weights: []float64{1, 1, 1}}, api.ErrBadRequest, "3 weights"},
		{"density 2", api.MergeRequest{Parents: parents, Density: 2}, api.ErrBadRequest, "density"},
		{"a name with a control character", api.MergeRequest{Parents: parents, Name: "a\x1bb"}, api.ErrBadRequest, "control"},
	} {
		_, err := n.Merge(ctx, c.r)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %v saying %q", c.what, err, c.want, c.msg)
		}
	}

	// The two parents hold 2 x 589,824 parameters: 9.4 MB to merge.
	n.merge.budget = 8 << 20
	_, err := n.Merge(ctx, api.MergeRequest{Parents: parents})
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "merges at most 8.0 MiB") {
		t.Fatalf("over the memory budget: %v", err)
	}
	if got := len(n.Experts(api.Filter{}, api.Page{}).Experts); got != 2 {
		t.Fatalf("%d experts after refused merges, want the 2 parents", got)
	}

	// Within it by parameters, but a TIES merge forms each module's dense
	// update (the largest here 1152 x 384, 40 bytes an element): refused
	// once the parents' shapes are known, before the merge.
	n.merge.budget = 16 << 20
	_, err = n.Merge(ctx, api.MergeRequest{Parents: parents, Method: compress.MergeTIES})
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "of work") {
		t.Fatalf("TIES over the memory budget: %v", err)
	}

	// Within it, unpublished: stored and pinned, not signed.
	e, err := n.Merge(ctx, api.MergeRequest{Parents: parents})
	if err != nil {
		t.Fatal(err)
	}
	if !e.Local || !e.Pinned || e.Signed || e.Merge != nil || e.Name != "python+python-f16" {
		t.Fatalf("unpublished merge: %+v", e)
	}
}
