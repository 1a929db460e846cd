package node

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expertd/expertd/node/api"
)

// A publication gossip would refuse to sign (here a base model name over
// its 256-byte limit, which only the signing checks) fails as a bad request
// before a version number is taken: the next publish of the name is still
// version 1, and nothing was stored (taking the number first left a gap in
// the line, and passed every test, issue 19).
func TestPublishRefusedTakesNoVersion(t *testing.T) {
	n := startNode(t, nil, nil)
	dir := retrained(t, 32)
	cfg := filepath.Join(dir, "adapter_config.json")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	long := bytes.Replace(b, []byte(`"base_model_name_or_path": null`), []byte(`"base_model_name_or_path": "`+strings.Repeat("m", 257)+`"`), 1)
	if bytes.Equal(long, b) {
		t.Fatal("the fixture's config has no base_model_name_or_path: null to replace")
	}
	if err := os.WriteFile(cfg, long, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Publish(context.Background(), api.PublishRequest{Path: dir, Name: "team-sql"}); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("publish with a base model name of 257 bytes: %v, want a bad request", err)
	}
	if got := n.Experts(api.Filter{}, api.Page{}).Experts; len(got) != 0 {
		t.Fatalf("a refused publish stored %+v", got)
	}
	if e := publishAs(t, n, retrained(t, 33), "team-sql"); e.Version != 1 {
		t.Fatalf("the first publish that succeeds is version %d, want 1", e.Version)
	}
}
