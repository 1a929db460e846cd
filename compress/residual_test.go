package compress

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/expertd/expertd/compress/safetensors"
)

// writeModel writes tensors as dir/file in dtype.
func writeModel(t testing.TB, dir, file string, dtype safetensors.DType, names []string, vals map[string][]float32, shapes map[string][]int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var infos []safetensors.TensorInfo
	for _, n := range names {
		infos = append(infos, safetensors.TensorInfo{Name: n, DType: dtype, Shape: shapes[n]})
	}
	f, err := os.Create(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := safetensors.NewWriter(f, map[string]string{"format": "pt"}, infos)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := w.WriteFloat32(vals[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestResidualRoundTrip compresses a small synthetic full fine-tune against
// a sharded base and reconstructs base + tau_hat.
func TestResidualRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	root := t.TempDir()
	names := []string{"emb.weight", "h.0.w", "h.1.w"}
	shapes := map[string][]int64{"emb.weight": {64, 16}, "h.0.w": {16, 16}, "h.1.w": {16, 32}}
	base, ft := map[string][]float32{}, map[string][]float32{}
	for _, n := range names {
		k := int(numElements(shapes[n]))
		base[n], ft[n] = make([]float32, k), make([]float32, k)
		for i := range k {
			base[n][i] = float32(rng.NormFloat64())
			ft[n][i] = base[n][i] + float32(rng.NormFloat64()*0.01)
		}
	}
	baseDir, ftDir := filepath.Join(root, "base"), filepath.Join(root, "ft")
	// The base is sharded: two files and an index.
	writeModel(t, baseDir, "model-00001-of-00002.safetensors", "F32", names[:1], base, shapes)
	writeModel(t, baseDir, "model-00002-of-00002.safetensors", "F32", names[1:], base, shapes)
	index := `{"metadata":{},"weight_map":{"emb.weight":"model-00001-of-00002.safetensors","h.0.w":"model-00002-of-00002.safetensors","h.1.w":"model-00002-of-00002.safetensors"}}`
	if err := os.WriteFile(filepath.Join(baseDir, "model.safetensors.index.json"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	writeModel(t, ftDir, ModelWeightsFile, "F32", names, ft, shapes)
	if err := os.WriteFile(filepath.Join(ftDir, ModelConfigFile), []byte(`{"model_type":"tiny"}`), 0o644); err != nil {
		t.Fatal(err)
	}

	src, err := Load(ftDir, baseDir)
	if err != nil {
		t.Fatal(err)
	}
	if src.PeftType != PeftTypeFull || src.Base == "" {
		t.Fatalf("peft type %q, base %q", src.PeftType, src.Base)
	}
	var buf bytes.Buffer
	if _, _, err := Encode(&buf, src, WithDensity(0.1), WithAlpha(Alpha{Value: 1})); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()

	// Without the base, or with another base, nothing is written.
	out := filepath.Join(root, "out")
	if _, err := Expand(bytes.NewReader(data), out, ExpandOptions{}); !errors.Is(err, ErrBase) {
		t.Fatalf("no base: got %v", err)
	}
	other := filepath.Join(root, "other")
	base2 := map[string][]float32{}
	for _, n := range names {
		base2[n] = append([]float32(nil), base[n]...)
	}
	base2["h.1.w"][5] += 1
	writeModel(t, other, ModelWeightsFile, "F32", names, base2, shapes)
	if _, err := Expand(bytes.NewReader(data), out, ExpandOptions{BaseDir: other}); !errors.Is(err, ErrBase) {
		t.Fatalf("wrong base: got %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, ModelWeightsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed expand left %s", ModelWeightsFile)
	}

	if _, err := Expand(bytes.NewReader(data), out, ExpandOptions{BaseDir: baseDir}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(filepath.Join(out, ModelConfigFile))
	if string(cfg) != `{"model_type":"tiny"}` {
		t.Fatalf("config.json = %q", cfg)
	}
	var tau []Tensor
	for _, n := range names {
		d := make([]float32, len(ft[n]))
		for i := range d {
			d[i] = ft[n][i] - base[n][i]
		}
		tau = append(tau, Tensor{Name: n, Tau: d})
	}
	ref := refCompeft(tau, 0.1, Alpha{Value: 1}) // values are ±scale or 0
	f := openST(t, filepath.Join(out, ModelWeightsFile))
	for i, n := range names {
		got, err := f.ReadFloat32(f.Tensors[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := range got {
			want := base[n][j]
			if ref[i][j] != 0 {
				want = float32(float64(base[n][j]) + float64(ref[i][j]))
			}
			if got[j] != want && math.Abs(float64(got[j]-want)) > 1e-6*math.Abs(float64(want)) {
				t.Fatalf("%s[%d] = %v, want %v", n, j, got[j], want)
			}
		}
	}
}
