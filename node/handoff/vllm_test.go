package handoff

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vllmSetup starts a fake vLLM serving testModel and a Handoff using it.
func vllmSetup(t *testing.T, o Options) (*Handoff, *fakeVLLM) {
	t.Helper()
	fake := newFakeVLLM(testModel)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	o.VLLMURL = srv.URL
	if o.ServedModel == "" {
		o.ServedModel = testModel
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
	dir, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the load", loadedIn(h, "python"))
	if p, ok := fake.isLoaded("python"); !ok || p != dir {
		t.Errorf("vLLM has python at %q (%v), want %s", p, ok, dir)
	}
	s, _ := status(h, "python")
	if s.Attempts != 1 || s.LastError != "" || s.Failed {
		t.Errorf("status %+v", s)
	}
	if st := h.Stats(); st.LoadOK != 1 || st.LoadFailed != 0 || st.Retries != 0 {
		t.Errorf("stats %+v", st)
	}
	// The same expert again: nothing to write, nothing to load.
	if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	if calls := fake.callLog(); !slices.Equal(calls, []string{"load python"}) {
		t.Errorf("vLLM calls %v", calls)
	}
}

func TestAlreadyLoadedIsLoaded(t *testing.T) {
	for _, nested := range []bool{false, true} {
		h, fake := vllmSetup(t, Options{})
		fake.setNested(nested)
		fake.preload("python", "/somewhere") // loaded before expertd restarted
		if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the load", loadedIn(h, "python"))
		if st := h.Stats(); st.LoadOK != 1 || st.LoadFailed != 0 {
			t.Errorf("nested %v: stats %+v", nested, st)
		}
	}
}

func TestIA3NotSentToVLLM(t *testing.T) {
	h, fake := vllmSetup(t, Options{})
	dir, err := h.Materialize(context.Background(), cidA, "c-ia3", opener(container(t, ia3Dir), nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	s, _ := status(h, "c-ia3")
	if s.Loaded || s.Pending != "" || !strings.Contains(s.Note, "LoRA adapters only") {
		t.Errorf("status %+v", s)
	}
	// A LoRA queued after it is loaded: the IA3 was never in the way.
	if _, err := h.Materialize(context.Background(), cidB, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the LoRA load", loadedIn(h, "python"))
	if err := h.Remove(context.Background(), cidA, "c-ia3"); err != nil {
		t.Fatal(err)
	}
	if _, ok := status(h, "c-ia3"); ok {
		t.Error("a removed IA3 adapter is still listed")
	}
	if calls := fake.callLog(); !slices.Equal(calls, []string{"load python"}) {
		t.Errorf("vLLM calls %v", calls)
	}
	if st := h.Stats(); st.Skipped != 1 || st.Removed != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestVLLMDownThenUp(t *testing.T) {
	h, fake := vllmSetup(t, Options{})
	fake.setDown(true)
	if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "retries", func() bool { return h.Stats().Retries >= 3 })
	s, _ := status(h, "python")
	if s.Loaded || s.Pending != "load" || s.Failed || !strings.Contains(s.LastError, "503") || s.Attempts < 3 {
		t.Errorf("while down: status %+v", s)
	}
	fake.setDown(false)
	eventually(t, "the load", loadedIn(h, "python"))
	if s, _ := status(h, "python"); s.LastError != "" {
		t.Errorf("after the load: status %+v", s)
	}
	if st := h.Stats(); st.LoadOK != 1 || st.LoadFailed != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestVLLMConnectionRefusedThenUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused

	h := newTestHandoff(t, Options{VLLMURL: "http://" + addr + "/v1/", ServedModel: testModel})
	serve(t, h)
	if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "retries", func() bool { return h.Stats().Retries >= 2 })
	if s, _ := status(h, "python"); s.Loaded || s.Pending != "load" || s.LastError == "" {
		t.Errorf("while refused: status %+v", s)
	}

	fake := newFakeVLLM(testModel)
	srv := httptest.NewUnstartedServer(fake)
	srv.Listener.Close()
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
	eventually(t, "the load", loadedIn(h, "python"))
	if _, ok := fake.isLoaded("python"); !ok {
		t.Error("vLLM does not have the adapter")
	}
}

func TestLoadRefused(t *testing.T) {
	for _, nested := range []bool{false, true} { // 400 BadRequestError, or 500 from newer vLLM
		h, fake := vllmSetup(t, Options{ServedModel: "another-model"})
		fake.setNested(nested)
		if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
			t.Fatal(err)
		}
		failed := func() bool { s, _ := status(h, "python"); return s.Failed }
		eventually(t, "the failure", failed)
		s, _ := status(h, "python")
		if s.Loaded || s.Pending != "" || s.Attempts != 1 || !strings.Contains(s.LastError, "not the served model") {
			t.Errorf("nested %v: status %+v", nested, s)
		}
		if st := h.Stats(); st.LoadFailed != 1 || st.LoadOK != 0 || st.Retries != 0 {
			t.Errorf("nested %v: stats %+v", nested, st)
		}
		if j, _ := h.next(time.Now()); j != nil {
			t.Errorf("a refused load is queued again: %+v", j)
		}
		// Materializing it again is the way to try again.
		if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the second failure", func() bool { return h.Stats().LoadFailed == 2 })
		if calls := fake.callLog(); len(calls) != 2 {
			t.Errorf("vLLM calls %v", calls)
		}
	}
}

func TestRemoveUnloads(t *testing.T) {
	h, fake := vllmSetup(t, Options{})
	ctx := context.Background()
	dir, err := h.Materialize(ctx, cidA, "python", opener(container(t, loraDir), nil))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the load", loadedIn(h, "python"))
	if err := h.Remove(ctx, cidB, "python"); !errors.Is(err, ErrConflict) {
		t.Errorf("Remove with another CID: %v, want ErrConflict", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("a refused Remove deleted the dir: %v", err)
	}
	if err := h.Remove(ctx, cidA, "python"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dir after Remove: %v", err)
	}
	if names := readDirNames(t, h.Dir()); len(names) != 0 {
		t.Errorf("adapters dir holds %v", names)
	}
	eventually(t, "the unload", func() bool { _, ok := status(h, "python"); return !ok })
	if _, ok := fake.isLoaded("python"); ok {
		t.Error("vLLM still has the adapter")
	}
	if calls := fake.callLog(); !slices.Equal(calls, []string{"load python", "unload python"}) {
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
	fake.setDown(true)
	ctx := context.Background()
	if _, err := h.Materialize(ctx, cidA, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a retry", func() bool { return h.Stats().Retries >= 1 })
	if err := h.Remove(ctx, cidA, "python"); err != nil {
		t.Fatal(err)
	}
	if s, _ := status(h, "python"); s.Pending != "unload" {
		t.Errorf("status %+v", s)
	}
	fake.setDown(false)
	eventually(t, "the unload", func() bool { _, ok := status(h, "python"); return !ok })
	// The load normally never reaches vLLM and the unload, sent in case it
	// had, finds nothing. A retry of the load already on its way when Remove
	// came may still land once vLLM is back (a loaded machine): the unload
	// then follows it. Either way vLLM ends without the adapter.
	calls := fake.callLog()
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
	eventually(t, "the first load", loadedIn(h, "python"))
	if err := h.Remove(ctx, cidA, "python"); err != nil {
		t.Fatal(err)
	}
	dir, err := h.Materialize(ctx, cidB, "python", opener(container(t, "python-lora-r16-f16"), nil))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second load", func() bool {
		s, _ := status(h, "python")
		return s.CID == cidB && s.Loaded && s.Pending == ""
	})
	if calls := fake.callLog(); !slices.Equal(calls, []string{"load python", "unload python", "load python"}) {
		t.Errorf("vLLM calls %v", calls)
	}
	if m, _ := readMarker(dir); m.CID != cidB {
		t.Errorf("marker %+v", m)
	}
}

func TestRestartReconciles(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	// A first run materialized two adapters, and vLLM loaded one of them.
	h1 := newTestHandoff(t, Options{Dir: dir, ServedModel: testModel})
	for name, cid := range map[string]string{"kept": cidA, "dropped": cidB} {
		if _, err := h1.Materialize(ctx, cid, name, opener(container(t, loraDir), nil)); err != nil {
			t.Fatal(err)
		}
	}
	h2, fake := vllmSetup(t, Options{Dir: dir})
	fake.preload("kept", dir+"/kept")

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
	eventually(t, "kept loaded", loadedIn(h2, "kept"))
	eventually(t, "dropped unloaded", func() bool { _, ok := status(h2, "dropped"); return !ok })
	if opens != 0 {
		t.Error("an adapter already on disk was decoded again")
	}
	if calls := fake.callLog(); !slices.Equal(calls, []string{"load kept", "unload dropped"}) {
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
		eventually(t, name+" loaded", loadedIn(h, name))
	}
	waitChecks(t, fake, 3) // checks that find both loaded change nothing
	if calls := fake.callLog(); len(calls) != 2 {
		t.Fatalf("vLLM calls %v before the restart, want the two loads", calls)
	}

	fake.restart()
	eventually(t, "python loaded again", func() bool { _, ok := fake.isLoaded("python"); return ok })
	eventually(t, "other loaded again", func() bool { _, ok := fake.isLoaded("other"); return ok })
	eventually(t, "status loaded", func() bool { return loadedIn(h, "python")() && loadedIn(h, "other")() })
	if st := h.Stats(); st.Reloads != 2 || st.LoadOK != 4 {
		t.Errorf("stats %+v, want 2 reloads, 4 loads", st)
	}

	// Removed: unloaded, and not brought back by a check.
	if err := h.Remove(ctx, cidB, "other"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "other unloaded", func() bool { _, ok := status(h, "other"); return !ok })
	fake.restart()
	eventually(t, "python loaded after the second restart", func() bool { _, ok := fake.isLoaded("python"); return ok })
	waitChecks(t, fake, 3)
	if _, ok := fake.isLoaded("other"); ok {
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
	eventually(t, "python loaded", loadedIn(h, "python"))
	fake.setDown(true)
	waitChecks(t, fake, 3)
	if s, _ := status(h, "python"); !s.Loaded || s.Pending != "" || s.Failed {
		t.Errorf("status while vLLM is down: %+v", s)
	}
	fake.restart()
	fake.setDown(false)
	eventually(t, "python loaded again", func() bool { _, ok := fake.isLoaded("python"); return ok })
}

// waitChecks waits until the Handoff has asked fake for its model list n
// more times.
func waitChecks(t *testing.T, fake *fakeVLLM, n int) {
	t.Helper()
	want := fake.listed() + n
	eventually(t, "the checks", func() bool { return fake.listed() >= want })
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
	eventually(t, "python loaded", loadedIn(h, "python"))
	fake.setDown(true)
	if _, err := h.Materialize(ctx, cidB, "other", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a load tried while vLLM is down", func() bool { return h.Stats().Retries > 0 })
	fake.restart()
	fake.setDown(false)
	eventually(t, "both loaded before the 30 s backoff ends", func() bool {
		_, a := fake.isLoaded("python")
		_, b := fake.isLoaded("other")
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
				if !ids[id] {
					t.Errorf("%s missing from %v", id, ids)
				}
			}
		})
	}
}

func TestServeStopsWhileDown(t *testing.T) {
	fake := newFakeVLLM(testModel)
	fake.setDown(true)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	h := newTestHandoff(t, Options{VLLMURL: srv.URL, Backoff: time.Hour, MaxBackoff: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Serve(ctx) }()
	if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a retry", func() bool { return h.Stats().Retries == 1 })
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
		{loadPath, 400, flat(400, "InvalidUserInput", "The lora adapter 'x' has already been loaded."), done, nil},
		{loadPath, 400, nested(400, "InvalidUserInput", "The lora adapter 'x' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True."), done, nil},
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
