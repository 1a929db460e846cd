package node

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/handoff/fakevllm"
)

// A load vLLM refuses for good (a wrong API key) counts in
// expertd_handoff_failures_total, which the scrape reads from the hand-off.
func TestHandoffFailuresCounted(t *testing.T) {
	vllm := httptest.NewServer(fakevllm.New(fakevllm.Options{Base: fakevllm.Base{Model: "tiny-gpt"}, RuntimeUpdating: true, APIKey: "right"}))
	defer vllm.Close()
	n := startNode(t, nil, map[string]any{
		"inference.adapters_dir":        t.TempDir(),
		"inference.served_model":        "tiny-gpt",
		"inference.accept_unknown_base": true,
		"inference.vllm_url":            vllm.URL,
		"inference.vllm_api_key":        "wrong",
	})
	abs, _ := filepath.Abs(fixture)
	if _, err := n.Publish(context.Background(), api.PublishRequest{Path: abs, Name: "python"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "the refused load counted", func() bool { return n.snapshot().HandoffFailures == 1 })
	rec := httptest.NewRecorder()
	n.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(body), "\nexpertd_handoff_failures_total 1\n") {
		t.Fatalf("scrape lacks expertd_handoff_failures_total 1:\n%s", body)
	}
}
