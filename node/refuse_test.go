package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/expert"
	"github.com/expertd/expertd/node/store"
)

// TestFetchRefusesBombs: a container verified against its CID but whose
// header is invalid, or whose declared output is over
// store.max_output_size, is neither kept nor served on by the node that
// fetched it: a decompression bomb goes no further than the nodes that ask
// for it by CID.
func TestFetchRefusesBombs(t *testing.T) {
	if testing.Short() {
		t.Skip("two libp2p nodes")
	}
	a := startNode(t, nil, nil)
	b := startNode(t, addr(a), nil)
	ctx := context.Background()
	for _, c := range []struct{ file, why string }{
		{"zeros-64gib.cpeft", "the limit is 16.0 GiB"},
		{"config-traversal.cpeft", "authorized_keys"},
	} {
		f, err := os.Open(filepath.Join("../compress/testdata/attack", c.file))
		if err != nil {
			t.Fatal(err)
		}
		// The attacker's node holds and provides it (its own store takes any
		// bytes: nothing checks what a peer puts there).
		id, err := a.store.Add(ctx, f, store.Meta{Metadata: expert.Metadata{Name: c.file}})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		a.provide(pctx, id)
		cancel()
		if _, err := b.StartFetch(id.String()); err != nil {
			t.Fatal(err)
		}
		var tr api.Transfer
		testutil.Eventually(t, 60*time.Second, "the fetch of "+c.file+" ends", func() bool {
			tr = transferOf(t, b, id.String())
			return tr.State != api.StateRunning
		})
		if tr.State != api.StateFailed || !strings.Contains(tr.Error, ErrNotExpert.Error()) || !strings.Contains(tr.Error, c.why) {
			t.Fatalf("%s: %+v, want a failure saying %q", c.file, tr, c.why)
		}
		if _, err := b.store.Get(id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s is still stored after it was refused: %v", c.file, err)
		}
	}
}
