package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
)

// TestMaterializeTargets: the API's materialize writes only where it may.
// A directory holding files is refused unless "overwrite" (and the files
// that are not the adapter's are left alone); the adapters dir and the
// store are refused also through a symbolic link; an expert expanding past
// store.max_output_size is refused before a directory is made.
func TestMaterializeTargets(t *testing.T) {
	adapters := t.TempDir()
	n := startNode(t, nil, map[string]any{"inference.adapters_dir": adapters})
	abs, _ := filepath.Abs(fixture)
	pub, err := n.Publish(context.Background(), api.PublishRequest{Path: abs, Name: "python"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	root := t.TempDir()
	out := filepath.Join(root, "a", "out")
	if _, err := n.Materialize(ctx, pub.CID, api.MaterializeRequest{Dir: out}); err != nil {
		t.Fatalf("into a new directory: %v", err)
	}
	if _, err := n.Materialize(ctx, pub.CID, api.MaterializeRequest{Dir: out}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("into a directory holding the adapter: %v", err)
	}
	if _, err := n.Materialize(ctx, pub.CID, api.MaterializeRequest{Dir: out, Overwrite: true}); err != nil {
		t.Fatalf("overwrite: %v", err)
	}

	ssh := filepath.Join(root, ".ssh")
	if err := os.Mkdir(ssh, 0o700); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(ssh, "authorized_keys")
	if err := os.WriteFile(keys, []byte("ssh-ed25519 mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Materialize(ctx, pub.CID, api.MaterializeRequest{Dir: ssh}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("into ~/.ssh: %v", err)
	}
	if ents, _ := os.ReadDir(ssh); len(ents) != 1 {
		t.Fatalf("~/.ssh holds %d entries after a refused materialize", len(ents))
	}

	link := filepath.Join(root, "link")
	if err := os.Symlink(adapters, link); err != nil {
		t.Fatal(err)
	}
	storeLink := filepath.Join(root, "store-link")
	if err := os.Symlink(filepath.Join(n.cfg.DataDir(), StoreDir), storeLink); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(link, "python"), filepath.Join(storeLink, "x", "y"), adapters, "relative/dir"} {
		if _, err := n.Materialize(ctx, pub.CID, api.MaterializeRequest{Dir: dir}); !errors.Is(err, api.ErrBadRequest) {
			t.Errorf("into %s: %v", dir, err)
		}
	}
	// The hand-off writes its own copy in the background (Publish started it).
	testutil.Eventually(t, 10*time.Second, "the hand-off's own adapter", func() bool {
		_, err := os.Stat(filepath.Join(adapters, "python", ".expertd.json"))
		return err == nil
	})
}

func TestMaterializeOutputLimit(t *testing.T) {
	n := startNode(t, nil, map[string]any{"store.max_output_size": "64KiB"})
	abs, _ := filepath.Abs(fixture)
	pub, err := n.Publish(context.Background(), api.PublishRequest{Path: abs, Name: "python"})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "a", "out")
	_, err = n.Materialize(context.Background(), pub.CID, api.MaterializeRequest{Dir: out})
	if !errors.Is(err, api.ErrConflict) {
		t.Fatalf("2.4 MB adapter under a 64 KiB limit: %v", err)
	}
	t.Log(err)
	if _, err := os.Stat(filepath.Dir(out)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused materialize made a directory (%v)", err)
	}
}
