package handoff

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/expertd/expertd/compress"
)

// TestMaterializeRefusesAttacks hands the crafted containers of
// compress/testdata/attack to Materialize: each is refused with its error
// and nothing appears in the adapters directory, not even a temporary
// directory.
func TestMaterializeRefusesAttacks(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		file  string
		limit int64
		want  error
	}{
		{"zeros-2gib.cpeft", 1 << 30, compress.ErrOutputLimit},
		{"zeros-64gib.cpeft", 0, compress.ErrOutputLimit}, // the default, 16 GiB
		{"config-traversal.cpeft", 0, compress.ErrCorrupt},
		{"config-marker.cpeft", 0, compress.ErrCorrupt},
		{"kept-no-payload.cpeft", 0, compress.ErrCorrupt},
	} {
		b, err := os.ReadFile(filepath.Join("../../compress/testdata/attack", c.file))
		if err != nil {
			t.Fatal(err)
		}
		h := newTestHandoff(t, Options{MaxOutput: c.limit})
		_, err = h.Materialize(ctx, cidA, "bomb", opener(b, nil))
		// The policy may refuse a bomb first (its config is not a whole
		// LoRA config): either way nothing is written. TestMaterializeLimit
		// checks the limit on a real adapter.
		if !errors.Is(err, c.want) && !errors.Is(err, ErrRefused) {
			t.Errorf("%s: got %v, want %v", c.file, err, c.want)
		}
		t.Logf("%s: %v", c.file, err)
		if names := written(t, h.Dir()); len(names) != 0 {
			t.Errorf("%s: the adapters dir holds %v", c.file, names)
		}
	}
}

// TestMaterializeOnlyAdapters: a residual, or weights without an
// adapter_config.json, is refused before anything is written.
func TestMaterializeOnlyAdapters(t *testing.T) {
	h := newTestHandoff(t, Options{})
	tensor := []compress.Coded{{TensorHeader: compress.TensorHeader{Name: "w", DType: "F32", Shape: []int64{4}, Mode: "sparse", M: 1}}}
	for what, hdr := range map[string]compress.Header{
		"residual":          {PeftType: compress.PeftTypeFull, ConfigName: compress.ModelConfigFile, Config: `{}`, Base: "sha256:00"},
		"residual, no base": {PeftType: compress.PeftTypeFull},
		"no config":         {PeftType: "LORA"},
	} {
		hdr.Density, hdr.Alpha, hdr.Scope = 0.2, "auto", compress.ScopeGlobal
		var buf bytes.Buffer
		if _, err := compress.Write(&buf, hdr, tensor); err != nil {
			t.Fatal(err)
		}
		_, err := h.Materialize(context.Background(), cidA, "x", opener(buf.Bytes(), nil))
		if !errors.Is(err, ErrNotAdapter) && !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v", what, err)
		}
	}
	if names := written(t, h.Dir()); len(names) != 0 {
		t.Errorf("the adapters dir holds %v", names)
	}
}

// TestMaterializeLimit: a real adapter is refused under a limit below its
// output and written at that output.
func TestMaterializeLimit(t *testing.T) {
	data := container(t, loraDir)
	r, err := compress.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	need, err := compress.OutputBytes(r.Header(), "")
	if err != nil {
		t.Fatal(err)
	}
	h := newTestHandoff(t, Options{MaxOutput: need - 1})
	if _, err := h.Materialize(context.Background(), cidA, "lora", opener(data, nil)); !errors.Is(err, compress.ErrOutputLimit) {
		t.Fatalf("limit %d for %d bytes: %v", need-1, need, err)
	}
	h = newTestHandoff(t, Options{MaxOutput: need})
	if _, err := h.Materialize(context.Background(), cidA, "lora", opener(data, nil)); err != nil {
		t.Fatalf("limit %d for %d bytes: %v", need, need, err)
	}
}

// written lists what the adapters dir holds: its names and its versions
// (an empty VersionsDir is nothing written).
func written(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, n := range readDirNames(t, dir) {
		if n != VersionsDir {
			out = append(out, n)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, VersionsDir)); err == nil {
		for _, n := range readDirNames(t, filepath.Join(dir, VersionsDir)) {
			out = append(out, filepath.Join(VersionsDir, n))
		}
	}
	return out
}
