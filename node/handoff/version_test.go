package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/expertd/expertd/internal/testutil"
)

const (
	cidC = "bafkreicccccccccccccccccccccccccccccccccccccccccccccccccccc"
	pubP = "12D3KooWPublisherP"
	pubQ = "12D3KooWPublisherQ"
)

// TestNewerVersionTakesTheName: a name held by a version of a line moves
// to the line's newer versions only: vLLM replaces the adapter in place,
// and the version it served stays for the grace period. An older version,
// another publisher's expert, an expert of no line and the name under
// another case leave the adapters dir as it is.
func TestNewerVersionTakesTheName(t *testing.T) {
	h, fake := vllmSetup(t, Options{})
	ctx := context.Background()
	lora := opener(container(t, loraDir), nil)
	p1, err := h.MaterializeVersion(ctx, cidA, "team-sql", Version{pubP, 1}, lora)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "version 1 loaded", loadedIn(h, "team-sql"))
	p2, err := h.MaterializeVersion(ctx, cidB, "team-sql", Version{pubP, 2}, lora)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "version 2 loaded in place", func() bool {
		a, _ := fake.Loaded("team-sql")
		return a.Path == p2.ServerPath && loadedIn(h, "team-sql")()
	})
	if calls := fake.Calls(); !slices.Equal(calls, []string{"load team-sql", "load team-sql inplace"}) {
		t.Errorf("vLLM calls %v", calls)
	}
	if _, err := os.Stat(filepath.Join(p1.Version, "adapter_config.json")); err != nil {
		t.Errorf("the replaced version was deleted at once: %v", err)
	}
	if m, ok := h.Holder("TEAM-SQL"); !ok || m.CID != cidB || m.Publisher != pubP || m.Version != 2 {
		t.Errorf("holder %+v", m)
	}
	if s, _ := status(h, "team-sql"); s.CID != cidB || s.ExpertVersion != 2 || s.Publisher != pubP {
		t.Errorf("status %+v", s)
	}

	before := treeHash(t, h.Dir())
	var opens int
	refused := opener(container(t, loraDir), &opens)
	for _, c := range []struct {
		cid, name string
		ver       Version
		want      string
	}{
		{cidA, "team-sql", Version{pubP, 1}, "not older version 1"},
		{cidC, "team-sql", Version{pubP, 2}, "not older version 2"},
		{cidC, "team-sql", Version{pubQ, 3}, "publisher " + pubP},
		{cidC, "team-sql", Version{}, "holds expert " + cidB},
		{cidC, "Team-SQL", Version{pubP, 3}, "under another case"},
	} {
		_, err := h.MaterializeVersion(ctx, c.cid, c.name, c.ver, refused)
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q %+v: %v, want ErrConflict saying %q", c.cid, c.name, c.ver, err, c.want)
		}
		if c.ver.Publisher == pubP && c.ver.Seq <= 2 && !errors.Is(err, ErrSuperseded) {
			t.Errorf("%s %+v: %v, want ErrSuperseded", c.cid, c.ver, err)
		}
	}
	if opens != 0 || treeHash(t, h.Dir()) != before {
		t.Errorf("refused versions changed the adapters dir (%d opens)", opens)
	}
	if calls := fake.Calls(); len(calls) != 2 {
		t.Errorf("vLLM calls %v", calls)
	}
}

// TestVersionOfAnOlderRun: an adapter written before its line was known
// (by an expertd without versions) learns its version when materialized
// again, so that the next version may take the name.
func TestVersionOfAnOlderRun(t *testing.T) {
	h := newTestHandoff(t, Options{})
	ctx := context.Background()
	lora := opener(container(t, loraDir), nil)
	p, err := h.Materialize(ctx, cidA, "team-sql", lora)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.MaterializeVersion(ctx, cidB, "team-sql", Version{pubP, 2}, lora); !errors.Is(err, ErrConflict) {
		t.Fatalf("a version over an adapter of no line: %v", err)
	}
	if _, err := h.MaterializeVersion(ctx, cidA, "team-sql", Version{pubP, 1}, lora); err != nil {
		t.Fatal(err)
	}
	if m, _ := readMarker(p.Version); m.Publisher != pubP || m.Version != 1 || m.CID != cidA {
		t.Fatalf("marker %+v", m)
	}
	if _, err := h.MaterializeVersion(ctx, cidB, "team-sql", Version{pubP, 2}, lora); err != nil {
		t.Fatalf("version 2 after version 1 was recorded: %v", err)
	}
	// A marker that names a line is never rewritten.
	if _, err := h.MaterializeVersion(ctx, cidB, "team-sql", Version{pubQ, 9}, lora); err != nil {
		t.Fatal(err)
	}
	if m, ok := h.Holder("team-sql"); m.Publisher != pubP || m.Version != 2 || !ok {
		t.Errorf("marker %+v", m)
	}
}

// TestSwapServesThroughout: while a client keeps asking vLLM for the name,
// moving it to a newer version never makes vLLM answer that the adapter
// does not exist (the 404 of an unknown model): the swap is a link rename
// and a load in place.
func TestSwapServesThroughout(t *testing.T) {
	h, fake := vllmSetup(t, Options{}) // the latest vLLM: load_inplace
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	lora := opener(container(t, loraDir), nil)
	if _, err := h.MaterializeVersion(ctx, cidA, "team-sql", Version{pubP, 1}, lora); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "version 1 loaded", loadedIn(h, "team-sql"))
	var (
		stop            atomic.Bool
		asked, notFound atomic.Int64
		other           sync.Map
		wg              sync.WaitGroup
	)
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				code := complete(t, srv.URL, "team-sql")
				asked.Add(1)
				switch code {
				case http.StatusOK:
				case http.StatusNotFound:
					notFound.Add(1)
				default:
					other.Store(code, true)
				}
			}
		})
	}
	cids := []string{cidB, cidC, "bafkreiddddddddddddddddddddddddddddddddddddddddddddddddddd"}
	for i, c := range cids {
		p, err := h.MaterializeVersion(ctx, c, "team-sql", Version{pubP, uint64(i + 2)}, lora)
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, waitFor, fmt.Sprintf("version %d loaded", i+2), func() bool {
			a, _ := fake.Loaded("team-sql")
			return a.Path == p.ServerPath
		})
	}
	stop.Store(true)
	wg.Wait()
	if notFound.Load() != 0 || asked.Load() == 0 {
		t.Fatalf("%d of %d requests answered 404 through %d swaps", notFound.Load(), asked.Load(), len(cids))
	}
	other.Range(func(k, _ any) bool { t.Errorf("a request answered %v", k); return true })
	t.Logf("%d requests through %d swaps, none answered 404 (vLLM without load_inplace answers some: unload, then load)", asked.Load(), len(cids))
}

// complete asks vLLM at url for a completion from model and returns the
// status.
func complete(t *testing.T, url, model string) int {
	body, _ := json.Marshal(map[string]any{"model": model, "prompt": "SELECT", "max_tokens": 1})
	resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
