package node

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/expertd/expertd/compress/synth"
	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
)

// slowPublisher starts a node that serves 1 MiB/s to a peer, and writes an
// adapter that compresses (with density 0.6667) to an expert of a few 1
// MiB leaves: fetching it from that node takes seconds.
func slowPublisher(t *testing.T) (*Node, string) {
	t.Helper()
	adapter := filepath.Join(t.TempDir(), "lora")
	if err := synth.WriteLoRA(adapter, 16<<20, 3); err != nil {
		t.Fatal(err)
	}
	return startNode(t, nil, map[string]any{"fetch.serve_rate_per_peer": "1MiB"}), adapter
}

// A node fetching a multi-leaf expert announces itself as a provider as
// soon as it knows the expert's layout, before its fetch ends, so that
// others fetching the expert watch it and take its leaves as they verify.
func TestPartialHolderAnnounced(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and compresses a 64 MB adapter")
	}
	pub, adapter := slowPublisher(t)
	fetcher := startNode(t, addr(pub), nil)
	watcher := startNode(t, addr(pub), nil)
	waitMesh(t, pub, fetcher, watcher)
	e, err := pub.Publish(context.Background(), api.PublishRequest{Path: adapter, Name: "partial", Density: 0.6667})
	if err != nil {
		t.Fatal(err)
	}
	if e.Size <= 2<<20 {
		t.Fatalf("container of %d bytes: want several leaves", e.Size)
	}
	testutil.Eventually(t, 10*time.Second, "fetcher hears of the expert", func() bool { return known(fetcher, e.CID) })
	if _, err := fetcher.StartFetch(e.CID); err != nil {
		t.Fatal(err)
	}
	fid := fetcher.Identity().ID
	testutil.Eventually(t, 10*time.Second, "watcher lists the fetching node as a provider", func() bool {
		x, err := watcher.Expert(e.CID)
		return err == nil && slices.Contains(x.Providers, fid)
	})
	tr, err := fetcher.Transfer(e.CID)
	if err != nil {
		t.Fatal(err)
	}
	if tr.State != api.StateRunning || tr.Total == 0 || tr.Bytes >= tr.Total {
		t.Fatalf("announced at %+v: want a running fetch that knows the layout", tr)
	}
	testutil.Eventually(t, 30*time.Second, "the fetch completes", func() bool {
		tr, err := fetcher.Transfer(e.CID)
		return err == nil && tr.State == api.StateDone
	})
}
