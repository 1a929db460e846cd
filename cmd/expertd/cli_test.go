package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/expertd/expertd/node/expert"
	"github.com/expertd/expertd/node/store"
)

// runCLI runs the command tree in-process and returns stdout.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd(newViper())
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

const fixture = "../../compress/testdata/peft/python-lora-r16"

func TestCompressInspectDecompress(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "x.cpeft")
	if _, err := runCLI(t, "compress", fixture, "-o", file, "--density", "0.1", "--alpha", "1"); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "inspect", file, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s inspected
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}
	if s.File != file || s.Checksums != "ok" || s.PeftType != "LORA" || s.Params != 589824 || s.Density != 0.1 || s.Alpha != "1" || s.RatioBound > 1.03 {
		t.Fatalf("inspect: %+v", s)
	}
	if out, err := runCLI(t, "inspect", file); err != nil || !strings.Contains(out, "checksums        ok (the header and all 48 tensors)\n") {
		t.Fatalf("inspect does not say the checksums passed: %v\n%s", err, out)
	}
	restored := filepath.Join(dir, "out")
	if _, err := runCLI(t, "decompress", file, "-o", restored, "--dtype", "bf16"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		if _, err := os.Stat(filepath.Join(restored, f)); err != nil {
			t.Fatal(err)
		}
	}
	cid, err := runCLI(t, "cid", file)
	if err != nil || !strings.HasPrefix(cid, "bafkrei") {
		t.Fatalf("cid: %q %v", cid, err)
	}
}

func TestCLIErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.cpeft")
	os.WriteFile(bad, []byte("not a container"), 0o644)
	for _, args := range [][]string{
		{"compress", fixture}, // no -o
		{"compress", dir, "-o", filepath.Join(dir, "y.cpeft")}, // not an adapter
		{"compress", fixture, "-o", filepath.Join(dir, "y"), "--density", "2"},
		{"compress", fixture, "-o", filepath.Join(dir, "y"), "--scope", "row"},
		{"decompress", bad, "-o", filepath.Join(dir, "z")},
		{"inspect", bad},
	} {
		if _, err := runCLI(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "y")); !os.IsNotExist(err) {
		t.Error("a failed compress left its output")
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	t.Setenv("EXPERTD_COMPRESS_DENSITY", "0.05")
	file := filepath.Join(t.TempDir(), "x.cpeft")
	if _, err := runCLI(t, "compress", fixture, "-o", file); err != nil {
		t.Fatal(err)
	}
	out, _ := runCLI(t, "inspect", file, "--json")
	if !strings.Contains(out, `"density": 0.05`) {
		t.Fatalf("EXPERTD_COMPRESS_DENSITY ignored:\n%s", out)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := runCLI(t, args...)
		if err != nil || !strings.HasPrefix(out, "expertd ") || !strings.Contains(out, runtime.Version()) {
			t.Errorf("%v: %q, %v", args, out, err)
		}
	}
}

// verify --json prints the report with the data dir and whether it is ok.
func TestVerifyJSON(t *testing.T) {
	dir := t.TempDir()
	out, err := runCLI(t, "verify", "--data-dir", dir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		DataDir string `json:"data_dir"`
		OK      bool   `json:"ok"`
		Blocks  *int   `json:"blocks"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.DataDir != dir || !r.OK || r.Blocks == nil {
		t.Fatalf("verify --json: %+v %v\n%s", r, err, out)
	}
}

// TestVerifyFailsOnCorruptStore: verify reports a corrupt block and an
// expert it leaves incomplete, and fails, also with --json; run again, it
// finds the block gone and the expert still incomplete.
func TestVerifyFailsOnCorruptStore(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("expert "), 1000)
	root, err := s.Add(t.Context(), bytes.NewReader(content), store.Meta{Metadata: expert.Metadata{Name: "x"}})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	block, _ := filepath.Glob(filepath.Join(dir, "blocks", "*", root.String()))
	if len(block) != 1 {
		t.Fatalf("block file of %s: %v", root, block)
	}
	if err := os.WriteFile(block[0], []byte("not the block"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "verify", "--data-dir", dir, "--json")
	var r struct {
		OK      bool     `json:"ok"`
		Corrupt []string `json:"corrupt"`
	}
	if jerr := json.Unmarshal([]byte(out), &r); jerr != nil || err == nil || r.OK || len(r.Corrupt) != 1 {
		t.Fatalf("verify --json of a corrupt store: %v, %+v (%v)\n%s", err, r, jerr, out)
	}
	if out, err := runCLI(t, "verify", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "1 incomplete experts") {
		t.Fatalf("verify after the corrupt block was removed: %v\n%s", err, out)
	}
}
