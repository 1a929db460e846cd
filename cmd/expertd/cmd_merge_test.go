package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
)

// TestMergeCLI merges a container with an adapter directory, decompresses
// the result and checks its config and the provenance in its metadata.
func TestMergeCLI(t *testing.T) {
	dir := t.TempDir()
	py := filepath.Join(dir, "py.cpeft")
	if _, err := runCLI(t, "compress", fixture, "-o", py); err != nil {
		t.Fatal(err)
	}
	cid, err := runCLI(t, "cid", py)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "merged.cpeft")
	if _, err := runCLI(t, "merge", py, fixture+"-bf16", "-o", out, "--method", "ties", "--rank", "8", "--weights", "1,0.5", "--density", "0.3"); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := compress.Verify(f)
	if err != nil {
		t.Fatal(err)
	}
	if h.Density != 0.3 || len(h.Tensors) != 48 {
		t.Fatalf("header density %v, %d tensors", h.Density, len(h.Tensors))
	}
	var p compress.Provenance
	if err := json.Unmarshal([]byte(h.Metadata[compress.MergeMetadataKey]), &p); err != nil {
		t.Fatal(err)
	}
	if p.Method != "ties" || p.Rank != 8 || len(p.Parents) != 2 || p.Parents[0].CID != strings.TrimSpace(cid) ||
		p.Parents[1].Name != "python-lora-r16-bf16" || p.Parents[1].CID != "" || p.Weights[1] != 0.5 {
		t.Fatalf("provenance %+v (cid %s)", p, cid)
	}
	restored := filepath.Join(dir, "restored")
	if _, err := runCLI(t, "decompress", out, "-o", restored); err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	b, err := os.ReadFile(filepath.Join(restored, "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["r"] != 8.0 || cfg["lora_alpha"] != 8.0 || len(cfg["target_modules"].([]any)) != 4 {
		t.Fatalf("config r=%v lora_alpha=%v targets=%v", cfg["r"], cfg["lora_alpha"], cfg["target_modules"])
	}

	// Uncompressed output, and refusals that change nothing.
	if _, err := runCLI(t, "merge", py, fixture, "-o", filepath.Join(dir, "dense"), "--uncompressed"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dense", "adapter_model.safetensors")); err != nil {
		t.Fatal(err)
	}
	// IA3 experts merge too (and are never refitted).
	ia3 := "../../compress/testdata/peft/c-ia3"
	if _, err := runCLI(t, "merge", ia3, ia3, "-o", filepath.Join(dir, "ia3.cpeft"), "--method", "ties"); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.cpeft")
	for _, args := range [][]string{
		{"merge", py, "../../compress/testdata/peft/c-ia3", "-o", bad},
		{"merge", py, fixture, "-o", bad, "--weights", "1,x"},
		{"merge", py, fixture, "-o", bad, "--method", "mean"},
		{"merge", py, "-o", bad},
	} {
		if _, err := runCLI(t, args...); err == nil {
			t.Fatalf("%v: no error", args)
		}
		if _, err := os.Stat(bad); !os.IsNotExist(err) {
			t.Fatalf("%v left %s", args, bad)
		}
	}
}

// TestCompressRefitCLI checks --refit against plain compress: same format,
// about the same size, refused for IA3 and with a fixed alpha.
func TestCompressRefitCLI(t *testing.T) {
	dir := t.TempDir()
	plain, refit := filepath.Join(dir, "plain.cpeft"), filepath.Join(dir, "refit.cpeft")
	if _, err := runCLI(t, "compress", fixture, "-o", plain); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "compress", fixture, "-o", refit, "--refit", "--refit-rounds", "1"); err != nil {
		t.Fatal(err)
	}
	ps, rs := fileSize(t, plain), fileSize(t, refit)
	if r := float64(rs) / float64(ps); r < 0.98 || r > 1.02 {
		t.Fatalf("refit %d bytes, plain %d", rs, ps)
	}
	out, err := runCLI(t, "inspect", refit, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s compress.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Alpha != compress.AlphaRefit {
		t.Fatalf("inspect: %+v %v", s, err)
	}
	if _, err := runCLI(t, "decompress", refit, "-o", filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"compress", "../../compress/testdata/peft/c-ia3", "-o", filepath.Join(dir, "x.cpeft"), "--refit"},
		{"compress", fixture, "-o", filepath.Join(dir, "x.cpeft"), "--refit", "--alpha", "1"},
		{"compress", fixture, "-o", filepath.Join(dir, "x.cpeft"), "--refit", "--refit-init", "svd"},
	} {
		if _, err := runCLI(t, args...); err == nil {
			t.Fatalf("%v: no error", args)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.cpeft")); !os.IsNotExist(err) {
		t.Fatal("a refused compress left a file")
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestMergeThroughDaemon: expertd merge of CIDs asks the daemon, which
// stores the result (--publish: publishes it, its provenance signed), and
// a merge of files here publishes OUT.cpeft with --publish; mixing files
// and CIDs, or -o with CIDs, is refused before anything is done.
func TestMergeThroughDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon process")
	}
	bin := daemontest.Build(t)
	root := t.TempDir()
	run := func(args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(cmd.Environ(), "XDG_CONFIG_HOME="+root)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return strings.TrimSpace(out.String()), errb.String(), err
	}
	d := daemontest.Start(t, bin, root, "a", "")
	py, _ := filepath.Abs(fixture)
	var parents []string
	for _, p := range []struct{ dir, name string }{{py, "python"}, {py + "-f16", "python-f16"}} {
		c, stderr, err := run("publish", p.dir, "--name", p.name, "--api", d.API)
		if err != nil {
			t.Fatalf("publish %s: %v\n%s", p.name, err, stderr)
		}
		parents = append(parents, c)
	}
	ctx := context.Background()
	client := d.Client()

	merged, stderr, err := run("merge", parents[0], parents[1], "--method", "ties", "--publish", "--name", "both", "--api", d.API)
	if err != nil {
		t.Fatalf("merge of CIDs: %v\n%s", err, stderr)
	}
	e, err := client.Expert(ctx, merged)
	if err != nil || !e.Signed || e.Name != "both" || e.Merge == nil || e.Merge.Method != "ties" || !slices.Equal(e.Merge.Parents, parents) {
		t.Fatalf("merged expert %+v (provenance %+v), %v", e, e.Merge, err)
	}

	dir := t.TempDir()
	pyc := filepath.Join(dir, "py.cpeft")
	if _, stderr, err := run("compress", py, "-o", pyc); err != nil {
		t.Fatalf("compress: %v\n%s", err, stderr)
	}
	pycid, _, _ := run("cid", pyc)
	out := filepath.Join(dir, "here.cpeft")
	local, stderr, err := run("merge", pyc, py+"-f16", "-o", out, "--publish", "--api", d.API)
	if err != nil {
		t.Fatalf("merge of files with --publish: %v\n%s", err, stderr)
	}
	e, err = client.Expert(ctx, local)
	if err != nil || !e.Signed || e.Name != "here" || e.Merge == nil || !slices.Equal(e.Merge.Parents, []string{pycid, ""}) {
		t.Fatalf("published local merge %+v (provenance %+v), %v", e, e.Merge, err)
	}

	before, err := client.Experts(ctx, api.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"merge", pyc, parents[0], "--api", d.API}, "is a file and"},
		{[]string{"merge", parents[0], parents[1], "-o", out, "--api", d.API}, "drop -o"},
		{[]string{"merge", parents[0], "bafy-nothing", "--api", d.API}, "not a CID"},
		{[]string{"merge", pyc, py, "-o", filepath.Join(dir, "x.cpeft"), "--publish", "--api", testutil.FreeAddr(t)}, "cannot reach the expertd daemon"},
	} {
		if _, stderr, err := run(c.args...); err == nil || !strings.Contains(stderr, c.msg) {
			t.Errorf("%v: %v, want an error saying %q:\n%s", c.args[1:], err, c.msg, stderr)
		}
	}
	if after, err := client.Experts(ctx, api.Filter{}); err != nil || len(after) != len(before) {
		t.Fatalf("refused merges changed the experts: %d -> %d (%v)", len(before), len(after), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.cpeft")); err == nil {
		t.Fatal("a merge refused for want of a daemon wrote its output")
	}
}
