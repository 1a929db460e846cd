package handoff

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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

func TestVLLMDownThenUp(t *testing.T) {
	h, fake := vllmSetup(t, Options{})
	fake.SetDown(true)
	if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "retries", func() bool { return h.Stats().Retries >= 3 })
	s, _ := status(h, "python")
	if s.Loaded || s.Pending != "load" || s.Failed || !strings.Contains(s.LastError, "503") || s.Attempts < 3 {
		t.Errorf("while down: status %+v", s)
	}
	fake.SetDown(false)
	testutil.Eventually(t, waitFor, "the load", loadedIn(h, "python"))
	if s, _ := status(h, "python"); s.LastError != "" {
		t.Errorf("after the load: status %+v", s)
	}
	if st := h.Stats(); st.LoadOK != 1 || st.LoadFailed != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestVLLMConnectionRefusedThenUp(t *testing.T) {
	addr := testutil.FreeAddr(t) // nothing listens: connection refused

	h := newTestHandoff(t, Options{VLLMURL: "http://" + addr + "/v1/", Policy: Policy{ServedModel: testModel, AcceptUnknownBase: true}})
	serve(t, h)
	if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "retries", func() bool { return h.Stats().Retries >= 2 })
	if s, _ := status(h, "python"); s.Loaded || s.Pending != "load" || s.LastError == "" {
		t.Errorf("while refused: status %+v", s)
	}

	fake := fakevllm.New(fakevllm.Options{Base: testBase, RuntimeUpdating: true})
	srv := httptest.NewUnstartedServer(fake)
	srv.Listener.Close()
	var err error
	for i := 0; ; i++ { // the port was free a moment ago; take it back
		if srv.Listener, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if i == 50 {
			t.Skipf("cannot listen on %s again: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	testutil.Eventually(t, waitFor, "the load", loadedIn(h, "python"))
	if _, ok := fake.Loaded("python"); !ok {
		t.Error("vLLM does not have the adapter")
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

func TestRestartReconciles(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	// A first run materialized two adapters, and vLLM loaded one of them.
	h1 := newTestHandoff(t, Options{Dir: dir, Policy: Policy{ServedModel: testModel, AcceptUnknownBase: true}})
	for name, cid := range map[string]string{"kept": cidA, "dropped": cidB} {
		if _, err := h1.Materialize(ctx, cid, name, opener(container(t, loraDir), nil)); err != nil {
			t.Fatal(err)
		}
	}
	h2, fake := vllmSetup(t, Options{Dir: dir})
	fake.Preload("kept", dir+"/kept")

	ms, err := h2.Scan()
	if err != nil || len(ms) != 2 || ms["dropped"].CID != cidB {
		t.Fatalf("Scan = %v, %v", ms, err)
	}
	var opens int
	if _, err := h2.Materialize(ctx, cidA, "kept", opener(container(t, loraDir), &opens)); err != nil {
		t.Fatal(err)
	}
	if err := h2.Remove(ctx, cidB, "dropped"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "kept loaded", loadedIn(h2, "kept"))
	testutil.Eventually(t, waitFor, "dropped unloaded", func() bool { _, ok := status(h2, "dropped"); return !ok })
	if opens != 1 {
		t.Errorf("the container was opened %d times, want once, for its header", opens)
	}
	if calls := fake.Calls(); !slices.Equal(calls, []string{"load kept", "unload dropped"}) {
		t.Errorf("vLLM calls %v", calls)
	}
	if st := h2.Stats(); st.Materialized != 0 || st.Removed != 1 || st.LoadOK != 1 || st.UnloadOK != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestVLLMRestartReloads: vLLM forgets runtime-loaded adapters when it
// restarts; the periodic check sees one missing from /v1/models and loads it
// again, and leaves alone the adapters vLLM still lists and one removed.
func TestVLLMRestartReloads(t *testing.T) {
	h, fake := vllmSetup(t, Options{Check: 5 * time.Millisecond})
	ctx := context.Background()
	for name, cid := range map[string]string{"python": cidA, "other": cidB} {
		if _, err := h.Materialize(ctx, cid, name, opener(container(t, loraDir), nil)); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, waitFor, name+" loaded", loadedIn(h, name))
	}
	waitChecks(t, fake, 3) // checks that find both loaded change nothing
	if calls := fake.Calls(); len(calls) != 2 {
		t.Fatalf("vLLM calls %v before the restart, want the two loads", calls)
	}

	fake.Restart()
	testutil.Eventually(t, waitFor, "python loaded again", func() bool { _, ok := fake.Loaded("python"); return ok })
	testutil.Eventually(t, waitFor, "other loaded again", func() bool { _, ok := fake.Loaded("other"); return ok })
	testutil.Eventually(t, waitFor, "status loaded", func() bool { return loadedIn(h, "python")() && loadedIn(h, "other")() })
	if st := h.Stats(); st.Reloads != 2 || st.LoadOK != 4 {
		t.Errorf("stats %+v, want 2 reloads, 4 loads", st)
	}

	// Removed: unloaded, and not brought back by a check.
	if err := h.Remove(ctx, cidB, "other"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "other unloaded", func() bool { _, ok := status(h, "other"); return !ok })
	fake.Restart()
	testutil.Eventually(t, waitFor, "python loaded after the second restart", func() bool { _, ok := fake.Loaded("python"); return ok })
	waitChecks(t, fake, 3)
	if _, ok := fake.Loaded("other"); ok {
		t.Error("a removed adapter was loaded again")
	}
}

// TestVLLMCheckDown: a vLLM that does not answer the check is asked again;
// nothing is reloaded or marked failed meanwhile.
func TestVLLMCheckDown(t *testing.T) {
	h, fake := vllmSetup(t, Options{Check: 5 * time.Millisecond})
	if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "python loaded", loadedIn(h, "python"))
	fake.SetDown(true)
	waitChecks(t, fake, 3)
	if s, _ := status(h, "python"); !s.Loaded || s.Pending != "" || s.Failed {
		t.Errorf("status while vLLM is down: %+v", s)
	}
	fake.Restart()
	fake.SetDown(false)
	testutil.Eventually(t, waitFor, "python loaded again", func() bool { _, ok := fake.Loaded("python"); return ok })
}

// waitChecks waits until the Handoff has asked fake for its model list n
// more times.
func waitChecks(t *testing.T, fake *fakevllm.Server, n int) {
	t.Helper()
	want := fake.Lists() + n
	testutil.Eventually(t, waitFor, "the checks", func() bool { return fake.Lists() >= want })
}

// FuzzParseModels feeds parseModels any body: a model list or an error,
// never a panic.
func FuzzParseModels(f *testing.F) {
	f.Add([]byte(`{"object":"list","data":[{"id":"base","parent":null},{"id":"python","parent":"base"}]}`))
	f.Add([]byte(`{"data":null}`))
	f.Add([]byte(`{"detail":"Not Found"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ids, err := parseModels(body)
		if err == nil && ids == nil {
			t.Fatal("no error and no list")
		}
	})
}

// TestVLLMCheckEndsBackoff: a call that found vLLM down waits out its
// backoff, but a check that finds vLLM up again ends the wait.
func TestVLLMCheckEndsBackoff(t *testing.T) {
	h, fake := vllmSetup(t, Options{Check: 5 * time.Millisecond, Backoff: 30 * time.Second, MaxBackoff: time.Minute})
	ctx := context.Background()
	if _, err := h.Materialize(ctx, cidA, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "python loaded", loadedIn(h, "python"))
	fake.SetDown(true)
	if _, err := h.Materialize(ctx, cidB, "other", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "a load tried while vLLM is down", func() bool { return h.Stats().Retries > 0 })
	fake.Restart()
	fake.SetDown(false)
	testutil.Eventually(t, waitFor, "both loaded before the 30 s backoff ends", func() bool {
		_, a := fake.Loaded("python")
		_, b := fake.Loaded("other")
		return a && b
	})
}

func TestModelsList(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		status     int
		want       []string
		wantErr    bool
	}{
		{name: "vllm", status: 200, body: `{"object":"list","data":[{"id":"base","object":"model","root":"/m","parent":null},{"id":"python","root":"/a/python","parent":"base"}]}`, want: []string{"base", "python"}},
		{name: "empty", status: 200, body: `{"object":"list","data":[]}`, want: []string{}},
		{name: "not a list", status: 200, body: `{"detail":"Not Found"}`, wantErr: true},
		{name: "html", status: 200, body: `<html>proxy</html>`, wantErr: true},
		{name: "unauthorized", status: 401, body: `{"error":"Unauthorized"}`, wantErr: true},
		{name: "starting", status: 503, body: `upstream connect error`, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != modelsPath || r.Header.Get("Authorization") != "Bearer k" {
					t.Errorf("request %s %s %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c, err := newVLLMClient(srv.URL+"/v1", "k", srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			ids, err := c.models(context.Background())
			if tt.wantErr {
				if err == nil {
					t.Fatalf("models = %v, want an error", ids)
				}
				return
			}
			if err != nil || len(ids) != len(tt.want) {
				t.Fatalf("models = %v, %v; want %v", ids, err, tt.want)
			}
			for _, id := range tt.want {
				if _, ok := ids[id]; !ok {
					t.Errorf("%s missing from %v", id, ids)
				}
			}
		})
	}
}

func TestServeStopsWhileDown(t *testing.T) {
	fake, url := newFake(t, fakevllm.Options{})
	fake.SetDown(true)
	h := newTestHandoff(t, Options{VLLMURL: url, Backoff: time.Hour, MaxBackoff: time.Hour, Policy: Policy{AcceptUnknownBase: true}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Serve(ctx) }()
	if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "a retry", func() bool { return h.Stats().Retries == 1 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := h.Serve(context.Background()); err == nil {
		t.Error("a second Serve did not fail")
	}
}

func TestClassify(t *testing.T) {
	flat := func(code int, typ, msg string) string {
		return `{"object":"error","message":"` + msg + `","type":"` + typ + `","param":null,"code":` + strconv.Itoa(code) + `}`
	}
	nested := func(code int, typ, msg string) string {
		return `{"error":{"message":"` + msg + `","type":"` + typ + `","param":null,"code":` + strconv.Itoa(code) + `}}`
	}
	for _, c := range []struct {
		route  string
		status int
		body   string
		want   outcome
		is     error
	}{
		{loadPath, 200, "Success: LoRA adapter 'x' added successfully.", done, nil},
		{unloadPath, 200, "Success: LoRA adapter 'x' removed successfully.", done, nil},
		{loadPath, 400, flat(400, "InvalidUserInput", "The lora adapter 'x' has already been loaded."), already, nil},
		{loadPath, 400, nested(400, "InvalidUserInput", "The lora adapter 'x' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True."), already, nil},
		{loadPath, 500, nested(500, "InternalServerError", "Call to add_lora method failed: Server shutting down"), unavailable, ErrUnavailable},
		{unloadPath, 404, flat(404, "NotFoundError", "The lora adapter 'x' cannot be found."), done, nil},
		{unloadPath, 404, nested(404, "NotFoundError", "The lora adapter 'x' cannot be found."), done, nil},
		{unloadPath, 400, flat(400, "BadRequestError", "LoRA adapter x not found"), done, nil},
		{unloadPath, 404, `{"detail":"Not Found"}`, failed, ErrVLLM}, // no such route
		{loadPath, 404, `{"detail":"Not Found"}`, failed, ErrVLLM},
		{loadPath, 404, nested(404, "NotFoundError", "Loading lora x failed: No adapter found for /a/x"), failed, ErrVLLM},
		{loadPath, 400, flat(400, "BadRequestError", "bad rank"), failed, ErrVLLM},
		{loadPath, 500, nested(500, "InternalServerError", "target modules not supported"), failed, ErrVLLM},
		{loadPath, 401, `{"error":"Unauthorized"}`, failed, ErrVLLM},
		{loadPath, 415, `{"detail":"Unsupported Media Type"}`, failed, ErrVLLM},
		{loadPath, 500, "Internal Server Error", unavailable, ErrUnavailable},
		{loadPath, 502, "bad gateway", unavailable, ErrUnavailable},
		{loadPath, 503, nested(503, "ServiceUnavailableError", "sleeping"), unavailable, ErrUnavailable},
		{unloadPath, 504, "", unavailable, ErrUnavailable},
		{loadPath, 429, "", unavailable, ErrUnavailable},
	} {
		got, _, err := classify(c.route, c.status, []byte(c.body))
		if got != c.want || (c.is == nil) != (err == nil) || (c.is != nil && !errors.Is(err, c.is)) {
			t.Errorf("classify(%s, %d, %s) = %v, %v; want %v, %v", c.route, c.status, c.body, got, err, c.want, c.is)
		}
	}
}

func TestVLLMURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8000":     "http://127.0.0.1:8000",
		"http://127.0.0.1:8000/":    "http://127.0.0.1:8000",
		"http://127.0.0.1:8000/v1":  "http://127.0.0.1:8000",
		"https://gpu:8443/vllm/v1/": "https://gpu:8443/vllm",
	} {
		c, err := newVLLMClient(in, "", http.DefaultClient)
		if err != nil || c.base != want {
			t.Errorf("newVLLMClient(%q) base %v, %v; want %s", in, c, err, want)
		}
	}
	for _, in := range []string{"127.0.0.1:8000", "ftp://x", "http://", ":"} {
		if _, err := newVLLMClient(in, "", http.DefaultClient); err == nil {
			t.Errorf("newVLLMClient(%q) accepted", in)
		}
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
