package handoff

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/handoff/fakevllm"
)

// testBase is the base model of the fixtures, as the fake vLLM serves it:
// six blocks of a GPT with hidden size 384.
var testBase = fakevllm.Base{Model: testModel, Modules: map[string]fakevllm.Module{
	"qkv": {In: 384, Out: 1152}, "proj": {In: 384, Out: 384}, "fc1": {In: 384, Out: 1536}, "fc2": {In: 1536, Out: 384},
}}

// newFake returns a fake vLLM with runtime updating on, serving testBase
// unless fo sets another, and its URL.
func newFake(t *testing.T, fo fakevllm.Options) (*fakevllm.Server, string) {
	t.Helper()
	if fo.Base.Model == "" {
		fo.Base = testBase
	}
	fo.RuntimeUpdating = true
	fake := fakevllm.New(fo)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return fake, srv.URL
}

// vllmSetup starts a fake vLLM serving testBase and a Handoff using it,
// accepting the fixtures (which record no base) as adapters for it.
func vllmSetup(t *testing.T, o Options, fo ...fakevllm.Options) (*Handoff, *fakevllm.Server) {
	t.Helper()
	var f fakevllm.Options
	if len(fo) > 0 {
		f = fo[0]
	}
	fake, url := newFake(t, f)
	o.VLLMURL = url
	if o.Policy.ServedModel == "" {
		o.Policy = Policy{ServedModel: testModel, AcceptUnknownBase: true}
	}
	h := newTestHandoff(t, o)
	serve(t, h)
	return h, fake
}

func loadedIn(h *Handoff, name string) func() bool {
	return func() bool { s, ok := status(h, name); return ok && s.Loaded && s.Pending == "" }
}

func TestLoadAfterMaterialize(t *testing.T) {
	h, fake := vllmSetup(t, Options{})
	p, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil))
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "the load", loadedIn(h, "python"))
	if a, ok := fake.Loaded("python"); !ok || a.Path != p.ServerPath || a.Garbage {
		t.Errorf("vLLM has python %+v (%v), want it from %s", a, ok, p.ServerPath)
	}
	s, _ := status(h, "python")
	if s.Attempts != 1 || s.LastError != "" || s.Failed || s.ServerPath != p.ServerPath {
		t.Errorf("status %+v", s)
	}
	if st := h.Stats(); st.LoadOK != 1 || st.LoadFailed != 0 || st.Retries != 0 {
		t.Errorf("stats %+v", st)
	}
	// The same expert again: nothing to write, nothing to load.
	if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	if calls := fake.Calls(); !slices.Equal(calls, []string{"load python"}) {
		t.Errorf("vLLM calls %v", calls)
	}
}

// generations are the vLLM releases the hand-off is tested against.
var generations = map[string]fakevllm.Generation{"latest": fakevllm.Latest, "v0.14": fakevllm.V0_14, "v0.10": fakevllm.V0_10}

// TestAlreadyLoadedSameVersion: vLLM holds the adapter from an earlier
// run of expertd, from the same version directory: that is a load.
func TestAlreadyLoadedSameVersion(t *testing.T) {
	for gen, g := range generations {
		dir := t.TempDir()
		p, err := newTestHandoff(t, Options{Dir: dir, Policy: Policy{ServedModel: testModel, AcceptUnknownBase: true}}).
			Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil))
		if err != nil {
			t.Fatal(err)
		}
		h, fake := vllmSetup(t, Options{Dir: dir}, fakevllm.Options{Generation: g})
		fake.Preload("python", p.ServerPath)
		if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, waitFor, "the load", loadedIn(h, "python"))
		if st := h.Stats(); st.LoadOK != 1 || st.LoadFailed != 0 {
			t.Errorf("%s: stats %+v", gen, st)
		}
		if calls := fake.Calls(); !slices.Equal(calls, []string{"load python"}) {
			t.Errorf("%s: vLLM calls %v", gen, calls)
		}
	}
}

// TestAlreadyLoadedOtherFiles: vLLM holds other files under the name
// ("already been loaded" is no proof of this version): a vLLM that can
// replaces them in place, an older one unloads and loads.
func TestAlreadyLoadedOtherFiles(t *testing.T) {
	for gen, g := range generations {
		h, fake := vllmSetup(t, Options{}, fakevllm.Options{Generation: g})
		fake.Preload("python", "/somewhere/else")
		p, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil))
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, waitFor, "the load", loadedIn(h, "python"))
		a, _ := fake.Loaded("python")
		if a.Path != p.ServerPath {
			t.Errorf("%s: vLLM has python from %s, want %s", gen, a.Path, p.ServerPath)
		}
		want := []string{"load python", "load python inplace"}
		if g != fakevllm.Latest {
			want = []string{"load python", "unload python", "load python"}
		}
		if calls := fake.Calls(); !slices.Equal(calls, want) {
			t.Errorf("%s: vLLM calls %v, want %v", gen, calls, want)
		}
		if st := h.Stats(); st.LoadOK != 1 || st.LoadFailed != 0 {
			t.Errorf("%s: stats %+v", gen, st)
		}
	}
}

// TestIA3Refused: vLLM and LoRAX load LoRA only; an IA3 expert is not
// written, and says why.
func TestIA3Refused(t *testing.T) {
	h, fake := vllmSetup(t, Options{})
	_, err := h.Materialize(context.Background(), cidA, "c-ia3", opener(container(t, ia3Dir), nil))
	var r *Refusal
	if !errors.As(err, &r) || r.Reason != ReasonPeftType || !errors.Is(err, ErrRefused) {
		t.Fatalf("Materialize of IA3: %v, want a peft_type refusal", err)
	}
	if got := h.Refused(cidA); got == nil || got.Reason != ReasonPeftType {
		t.Errorf("Refused = %+v", got)
	}
	if names := readDirNames(t, h.Dir()); !slices.Equal(names, []string{VersionsDir}) {
		t.Errorf("adapters dir holds %v", names)
	}
	if names := readDirNames(t, filepath.Join(h.Dir(), VersionsDir)); len(names) != 0 {
		t.Errorf("versions dir holds %v", names)
	}
	if _, ok := status(h, "c-ia3"); ok {
		t.Error("a refused expert is listed as an adapter")
	}
	if calls := fake.Calls(); len(calls) != 0 {
		t.Errorf("vLLM calls %v", calls)
	}
	if st := h.Stats(); st.Refused != 1 || st.Materialized != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestLoadRefused: an adapter the Policy passes but the engine refuses
// (its modules are larger than those of the served base) fails for good,
// whatever the vLLM release says (400 before ≈v0.18, 500 since).
func TestLoadRefused(t *testing.T) {
	small := fakevllm.Base{Model: testModel, Modules: map[string]fakevllm.Module{
		"qkv": {In: 256, Out: 768}, "proj": {In: 256, Out: 256}, "fc1": {In: 256, Out: 1024}, "fc2": {In: 1024, Out: 256},
	}}
	for gen, g := range generations {
		h, fake := vllmSetup(t, Options{}, fakevllm.Options{Base: small, Generation: g})
		if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
			t.Fatal(err)
		}
		failed := func() bool { s, _ := status(h, "python"); return s.Failed }
		testutil.Eventually(t, waitFor, "the failure", failed)
		s, _ := status(h, "python")
		if s.Loaded || s.Pending != "" || s.Attempts != 1 || !strings.Contains(s.LastError, "must match the size of tensor b") {
			t.Errorf("%s: status %+v", gen, s)
		}
		if st := h.Stats(); st.LoadFailed != 1 || st.LoadOK != 0 || st.Retries != 0 {
			t.Errorf("%s: stats %+v", gen, st)
		}
		if j, _ := h.next(time.Now()); j != nil {
			t.Errorf("%s: a refused load is queued again: %+v", gen, j)
		}
		// Materializing it again is the way to try again.
		if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, waitFor, "the second failure", func() bool { return h.Stats().LoadFailed == 2 })
		if calls := fake.Calls(); len(calls) != 2 {
			t.Errorf("%s: vLLM calls %v", gen, calls)
		}
	}
}

// TestSmallerBaseLoadsGarbage: an adapter for a base with smaller modules
// loads without a word in vLLM, which is why the hand-off checks the base
// model by name: an expert that names another base is never sent.
func TestSmallerBaseLoadsGarbage(t *testing.T) {
	large := fakevllm.Base{Model: "gpt2-large", Modules: map[string]fakevllm.Module{
		"qkv": {In: 768, Out: 2304}, "proj": {In: 768, Out: 768}, "fc1": {In: 768, Out: 3072}, "fc2": {In: 3072, Out: 768},
	}}
	// Without a served model the base is not checked: vLLM takes it.
	h, fake := vllmSetup(t, Options{Policy: Policy{ServedModel: "", AcceptUnknownBase: true}}, fakevllm.Options{Base: large})
	h.policy = Policy{}
	if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "the load", loadedIn(h, "python"))
	if a, _ := fake.Loaded("python"); !a.Garbage {
		t.Errorf("the fake did not note the smaller modules: %+v", a)
	}
	// Served as gpt2-large, an expert that records gpt2-tiny as its base
	// is refused before anything is written.
	hdr := loraHeader(testModel, 16, "")
	if _, r := (Policy{ServedModel: "gpt2-large"}).CheckHeader(hdr); r == nil || r.Reason != ReasonOtherBase {
		t.Errorf("CheckHeader: %+v, want other_base", r)
	}
}

func TestReplaceExpertUnderName(t *testing.T) {
	h, fake := vllmSetup(t, Options{})
	ctx := context.Background()
	if _, err := h.Materialize(ctx, cidA, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "the first load", loadedIn(h, "python"))
	if err := h.Remove(ctx, cidA, "python"); err != nil {
		t.Fatal(err)
	}
	p, err := h.Materialize(ctx, cidB, "python", opener(container(t, "python-lora-r16-f16"), nil))
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "the second load", func() bool {
		s, _ := status(h, "python")
		return s.CID == cidB && s.Loaded && s.Pending == ""
	})
	if calls := fake.Calls(); !slices.Equal(calls, []string{"load python", "unload python", "load python"}) {
		t.Errorf("vLLM calls %v", calls)
	}
	if m, _ := readMarker(p.Dir); m.CID != cidB {
		t.Errorf("marker %+v", m)
	}
}

// TestReplaceInPlace: a name moved to a new version (here the same expert
// under a new dtype; a followed name's newer version takes the same path)
// is replaced in place where vLLM can (load_inplace: the name is served
// throughout), and by an unload and a load where it cannot.
func TestReplaceInPlace(t *testing.T) {
	for gen, g := range generations {
		h, fake := vllmSetup(t, Options{}, fakevllm.Options{Generation: g})
		ctx := context.Background()
		p1, err := h.Materialize(ctx, cidA, "python", opener(container(t, loraDir), nil))
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, waitFor, "the first load", loadedIn(h, "python"))
		h.dtype = "F16"
		p2, err := h.Materialize(ctx, cidA, "python", opener(container(t, loraDir), nil))
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, waitFor, "the new version loaded", func() bool {
			a, _ := fake.Loaded("python")
			return a.Path == p2.ServerPath && loadedIn(h, "python")()
		})
		a, _ := fake.Loaded("python")
		want := []string{"load python", "load python inplace"}
		if g != fakevllm.Latest {
			want = []string{"load python", "load python", "unload python", "load python"}
		} else if !a.InPlace || !a.Stale || a.ID != 1 {
			t.Errorf("%s: in place, vLLM keeps the id and marks the prefix cache stale: %+v", gen, a)
		}
		if calls := fake.Calls(); !slices.Equal(calls, want) {
			t.Errorf("%s: vLLM calls %v, want %v", gen, calls, want)
		}
		if _, err := os.Stat(filepath.Join(p1.Version, "adapter_config.json")); err != nil {
			t.Errorf("%s: the replaced version was deleted at once: %v", gen, err)
		}
		if st := h.Stats(); st.LoadOK != 2 || st.LoadFailed != 0 {
			t.Errorf("%s: stats %+v", gen, st)
		}
	}
}
