package handoff

import (
	"context"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/handoff/fakevllm"
)

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
