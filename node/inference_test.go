package node

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
)

// TestHandOff: a node beside an inference server prefetches what its
// want rule matches as soon as gossip announces it, writes it into the
// adapters dir for the served model, and resolves another expert by name on
// demand; an IA3 expert goes to no server.
func TestHandOff(t *testing.T) {
	if testing.Short() {
		t.Skip("two libp2p nodes")
	}
	a := startNode(t, nil, nil)
	adapters := t.TempDir()
	b := startNode(t, addr(a), map[string]any{
		"inference.adapters_dir":        adapters,
		"inference.served_model":        "tiny-gpt",
		"inference.accept_unknown_base": true, // the fixtures record no base
		"inference.want":                []string{"name=python*"},
		"trust.publishers":              []string{a.Identity().ID},
	})
	waitMesh(t, a, b)

	py, _ := filepath.Abs(fixture)
	ia3, _ := filepath.Abs("../compress/testdata/peft/c-ia3")
	pub, err := a.Publish(context.Background(), api.PublishRequest{Path: py, Name: "python-helper"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(context.Background(), api.PublishRequest{Path: ia3, Name: "c-ia3"}); err != nil {
		t.Fatal(err)
	}
	f16, _ := filepath.Abs("../compress/testdata/peft/python-lora-r16-f16")
	if _, err := a.Publish(context.Background(), api.PublishRequest{Path: f16, Name: "sql"}); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(adapters, "python-helper", "adapter_config.json")
	testutil.Eventually(t, 20*time.Second, "prefetched python-helper written to the adapters dir", func() bool {
		_, err := os.Stat(filepath.Join(adapters, "python-helper", "adapter_model.safetensors"))
		return err == nil
	})
	var cfg struct {
		BaseModel string `json:"base_model_name_or_path"`
	}
	data, err := os.ReadFile(cfgPath)
	if err != nil || json.Unmarshal(data, &cfg) != nil || cfg.BaseModel != "tiny-gpt" {
		t.Fatalf("adapter_config.json base model %q (%v)", cfg.BaseModel, err)
	}
	if e, err := b.Expert(pub.CID); err != nil || !e.Local {
		t.Fatalf("prefetched expert not stored: %+v %v", e, err)
	}
	// The files appear before the hand-off records them.
	testutil.Eventually(t, 10*time.Second, "python-helper listed in the status", func() bool {
		st := b.Status(api.Page{})
		return len(st.Adapters) > 0 && st.Adapters[0].Name == "python-helper"
	})
	if _, err := os.Stat(filepath.Join(adapters, "c-ia3")); !os.IsNotExist(err) {
		t.Fatal("c-ia3 matches no want rule but was written")
	}
	// An API caller cannot write into the directory the server loads from.
	if _, err := b.Materialize(context.Background(), pub.CID, api.MaterializeRequest{Dir: filepath.Join(adapters, "other")}); err == nil {
		t.Fatal("materialize into the adapters dir was allowed")
	}

	for _, name := range []string{"c-ia3", "sql"} {
		testutil.Eventually(t, 10*time.Second, "b knows "+name, func() bool {
			for _, e := range b.experts(api.Filter{Remote: true, Name: name}) {
				if len(e.Providers) > 0 {
					return true
				}
			}
			return false
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := b.Resolve(ctx, "sql", api.ResolveRequest{BaseModel: "tiny-gpt"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Dir != filepath.Join(adapters, "sql") || m.Name != "sql" || m.LoRAIntID <= 0 || !strings.HasPrefix(m.Path, filepath.Join(adapters, ".versions")+"/") {
		t.Fatalf("resolved %+v", m)
	}
	if _, err := os.Stat(filepath.Join(m.Path, "adapter_model.safetensors")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Resolve(ctx, "sql", api.ResolveRequest{BaseModel: "llama"}); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("resolved for another base: %v", err)
	}
	if _, err := b.Resolve(ctx, "c-ia3", api.ResolveRequest{}); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("resolved an IA3 expert: %v", err)
	}
	if _, err := b.Resolve(ctx, "nobody", api.ResolveRequest{}); err == nil {
		t.Fatal("resolved an unknown name")
	}
	// Removing the expert takes it away from the server too.
	if err := b.Remove(pub.CID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(adapters, "python-helper")); !os.IsNotExist(err) {
		t.Fatal("removed expert still in the adapters dir")
	}
}

// TestTrustedPublishers: with trust.publishers set, an expert published by
// anyone else is listed as untrusted and never prefetched or written for
// the inference server; a trusted publisher's signed expert is.
func TestTrustedPublishers(t *testing.T) {
	if testing.Short() {
		t.Skip("three libp2p nodes")
	}
	good := startNode(t, nil, nil)
	other := startNode(t, addr(good), nil)
	adapters := t.TempDir()
	b := startNode(t, addr(good), map[string]any{
		"inference.adapters_dir": adapters,
		"inference.want":         []string{"name=*"},
		"trust.publishers":       []string{good.Identity().ID},
	})
	waitMesh(t, good, other, b)
	py, _ := filepath.Abs(fixture)
	f16, _ := filepath.Abs("../compress/testdata/peft/python-lora-r16-f16")
	gp, err := good.Publish(context.Background(), api.PublishRequest{Path: py, Name: "from-good"})
	if err != nil {
		t.Fatal(err)
	}
	op, err := other.Publish(context.Background(), api.PublishRequest{Path: f16, Name: "from-other"})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "trusted expert prefetched and written", func() bool {
		_, err := os.Stat(filepath.Join(adapters, "from-good", "adapter_model.safetensors"))
		return err == nil
	})
	testutil.Eventually(t, 10*time.Second, "b lists the other expert", func() bool { _, err := b.Expert(op.CID); return err == nil })
	e, _ := b.Expert(op.CID)
	if e.Trusted || e.Local {
		t.Fatalf("untrusted expert: %+v", e)
	}
	if g, _ := b.Expert(gp.CID); !g.Trusted || !g.Signed {
		t.Fatalf("trusted expert: %+v", g)
	}
	if _, err := os.Stat(filepath.Join(adapters, "from-other")); !os.IsNotExist(err) {
		t.Fatal("an untrusted expert was written for the inference server")
	}
	if _, err := b.Resolve(context.Background(), "from-other", api.ResolveRequest{}); err == nil {
		t.Fatal("resolve handed an untrusted expert to the server")
	}
	// Fetched by hand it is the user's choice: stored and handed off.
	waitFetched(t, b, op.CID)
	if _, err := b.Materialize(context.Background(), op.CID, api.MaterializeRequest{Dir: filepath.Join(t.TempDir(), "x")}); err != nil {
		t.Fatalf("explicit materialize to a user dir: %v", err)
	}
	if _, err := b.Resolve(context.Background(), "from-other", api.ResolveRequest{}); err != nil {
		t.Fatalf("resolve of the expert the user fetched: %v", err)
	}
}

// TestTrustByDefault: with no trust list a node hands to the inference
// server only what it published or what its user fetched by CID; want
// rules follow nobody else's experts until trust.publishers says so, and
// "*" trusts the whole swarm.
func TestTrustByDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("three libp2p nodes")
	}
	pub := startNode(t, nil, nil)
	closed, open := t.TempDir(), t.TempDir()
	wantAll := []string{"name=*"}
	b := startNode(t, addr(pub), map[string]any{"inference.adapters_dir": closed, "inference.want": wantAll})
	c := startNode(t, addr(pub), map[string]any{
		"inference.adapters_dir": open, "inference.want": wantAll, "trust.publishers": []string{"*"},
	})
	waitMesh(t, pub, b, c)
	py, _ := filepath.Abs(fixture)
	e, err := pub.Publish(context.Background(), api.PublishRequest{Path: py, Name: "stranger"})
	if err != nil {
		t.Fatal(err)
	}
	weights := func(dir string) string { return filepath.Join(dir, "stranger", "adapter_model.safetensors") }
	testutil.Eventually(t, 20*time.Second, `"*" prefetched and handed off the expert`, func() bool {
		_, err := os.Stat(weights(open))
		return err == nil
	})
	testutil.Eventually(t, 10*time.Second, "b lists the expert", func() bool { return known(b, e.CID) })
	if x, _ := b.Expert(e.CID); x.Trusted || x.Local {
		t.Fatalf("with no trust list, another publisher's expert: %+v", x)
	}
	if _, err := b.Resolve(context.Background(), "stranger", api.ResolveRequest{}); err == nil {
		t.Fatal("resolve by name handed an untrusted expert to the server")
	}
	if _, err := os.Stat(filepath.Join(closed, "stranger")); !os.IsNotExist(err) {
		t.Fatal("an expert from an untrusted publisher was written for the server")
	}
	// The user fetching it by CID vouches for it.
	waitFetched(t, b, e.CID)
	testutil.Eventually(t, 10*time.Second, "the expert the user fetched handed off", func() bool {
		_, err := os.Stat(weights(closed))
		return err == nil
	})
	if x, _ := b.Expert(e.CID); !x.Trusted || !x.Local {
		t.Fatalf("fetched by the user: %+v", x)
	}
	// This node's own experts are always trusted.
	ia3, _ := filepath.Abs("../compress/testdata/peft/c-ia3")
	own, err := b.Publish(context.Background(), api.PublishRequest{Path: ia3, Name: "own"})
	if err != nil {
		t.Fatal(err)
	}
	if x, _ := b.Expert(own.CID); !x.Trusted {
		t.Fatalf("own expert: %+v", x)
	}
}
