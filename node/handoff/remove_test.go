package handoff

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/expertd/expertd/internal/testutil"
)

// TestRefusedLater: an adapter the policy refuses after it was written
// (the settings changed) is taken away from the server: its name goes, its
// version is retired, and the refusal is recorded.
func TestRefusedLater(t *testing.T) {
	h := newTestHandoff(t, Options{Policy: Policy{AcceptUnknownBase: true}})
	ctx := context.Background()
	p, err := h.Materialize(ctx, cidA, "python", opener(container(t, loraDir), nil))
	if err != nil {
		t.Fatal(err)
	}
	h.policy.MaxLoRARank = 8
	if _, err := h.Materialize(ctx, cidA, "python", opener(container(t, loraDir), nil)); !errors.Is(err, ErrRefused) {
		t.Fatalf("Materialize under a lower rank limit: %v", err)
	}
	if _, err := os.Lstat(p.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the name is still there: %v", err)
	}
	if _, err := os.Stat(p.Version + retiredSuffix); err != nil {
		t.Errorf("the version is not retired: %v", err)
	}
	if r := h.Refused(cidA); r == nil || r.Reason != ReasonRank {
		t.Errorf("Refused = %+v", r)
	}
	if err := h.Remove(ctx, cidA, "python"); err != nil || h.Refused(cidA) != nil {
		t.Errorf("Remove: %v; the refusal is still remembered: %+v", err, h.Refused(cidA))
	}
}

func TestRemoveUnloads(t *testing.T) {
	h, fake := vllmSetup(t, Options{})
	ctx := context.Background()
	p, err := h.Materialize(ctx, cidA, "python", opener(container(t, loraDir), nil))
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "the load", loadedIn(h, "python"))
	if err := h.Remove(ctx, cidB, "python"); !errors.Is(err, ErrConflict) {
		t.Errorf("Remove with another CID: %v, want ErrConflict", err)
	}
	if _, err := os.Stat(p.Dir); err != nil {
		t.Fatalf("a refused Remove deleted the dir: %v", err)
	}
	if err := h.Remove(ctx, cidA, "python"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("name after Remove: %v", err)
	}
	if names := readDirNames(t, h.Dir()); !slices.Equal(names, []string{VersionsDir}) {
		t.Errorf("adapters dir holds %v", names)
	}
	// vLLM may still read the version for requests under way: it stays
	// until the grace has passed.
	if _, err := os.Stat(filepath.Join(p.Version, "adapter_model.safetensors")); err != nil {
		t.Errorf("version deleted at once: %v", err)
	}
	testutil.Eventually(t, waitFor, "the unload", func() bool { _, ok := status(h, "python"); return !ok })
	if _, ok := fake.Loaded("python"); ok {
		t.Error("vLLM still has the adapter")
	}
	if calls := fake.Calls(); !slices.Equal(calls, []string{"load python", "unload python"}) {
		t.Errorf("vLLM calls %v", calls)
	}
	if st := h.Stats(); st.Removed != 1 || st.UnloadOK != 1 || st.UnloadFailed != 0 {
		t.Errorf("stats %+v", st)
	}
	if err := h.Remove(ctx, cidA, "python"); err != nil { // again: nothing left
		t.Errorf("second Remove: %v", err)
	}
}

func TestRemoveBeforeLoadSent(t *testing.T) {
	h, fake := vllmSetup(t, Options{})
	fake.SetDown(true)
	ctx := context.Background()
	if _, err := h.Materialize(ctx, cidA, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "a retry", func() bool { return h.Stats().Retries >= 1 })
	if err := h.Remove(ctx, cidA, "python"); err != nil {
		t.Fatal(err)
	}
	if s, _ := status(h, "python"); s.Pending != "unload" {
		t.Errorf("status %+v", s)
	}
	fake.SetDown(false)
	testutil.Eventually(t, waitFor, "the unload", func() bool { _, ok := status(h, "python"); return !ok })
	// The load normally never reaches vLLM and the unload, sent in case it
	// had, finds nothing. A retry of the load already on its way when Remove
	// came may still land once vLLM is back (a loaded machine): the unload
	// then follows it. Either way vLLM ends without the adapter.
	calls := fake.Calls()
	if !slices.Equal(calls, []string{"unload python"}) && !slices.Equal(calls, []string{"load python", "unload python"}) {
		t.Errorf("vLLM calls %v", calls)
	}
	if st := h.Stats(); st.LoadOK != uint64(len(calls)-1) || st.UnloadOK != 1 {
		t.Errorf("stats %+v after calls %v", st, calls)
	}
}
