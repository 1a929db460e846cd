package node

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expertd/expertd/node/api"
)

// TestPublishAllOrNothing: a publish the swarm would refuse (a name too
// long, or one that displays as another) fails before anything is stored,
// and the same file then publishes; the same bytes again under their name
// publish again, under another name they are refused.
func TestPublishAllOrNothing(t *testing.T) {
	n := startNode(t, nil, nil)
	ctx := context.Background()
	py, _ := filepath.Abs(fixture)
	for _, name := range []string{strings.Repeat("n", 257), "team-\u202elqs", "tab\there"} {
		_, err := n.Publish(ctx, api.PublishRequest{Path: py, Name: name})
		if !errors.Is(err, api.ErrBadRequest) {
			t.Fatalf("publish as %q: %v, want a bad request", name, err)
		}
		if got := n.Experts(api.Filter{}, api.Page{}).Experts; len(got) != 0 {
			t.Fatalf("a refused publish stored %+v", got)
		}
	}
	e, err := n.Publish(ctx, api.PublishRequest{Path: py, Name: "python"})
	if err != nil {
		t.Fatal(err)
	}
	if !e.Signed || !e.Pinned || e.Name != "python" || e.Publisher != n.Identity().ID {
		t.Fatalf("published: %+v", e)
	}
	again, err := n.Publish(ctx, api.PublishRequest{Path: py, Name: "python"})
	if err != nil || again.CID != e.CID {
		t.Fatalf("publishing again: %+v, %v", again, err)
	}
	_, err = n.Publish(ctx, api.PublishRequest{Path: py, Name: "other"})
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), `"python"`) {
		t.Fatalf("same bytes under another name: %v", err)
	}
	if got := n.Experts(api.Filter{}, api.Page{}).Experts; len(got) != 1 || got[0].Name != "python" {
		t.Fatalf("experts after the refused rename: %+v", got)
	}
}
