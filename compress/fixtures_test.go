package compress

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/expertd/expertd/compress/safetensors"
)

// compressDir runs Load + Encode + Expand and returns the output directory
// and the container bytes.
func compressDir(t *testing.T, dir string, dtype string, opts ...Option) (string, []byte) {
	t.Helper()
	src, err := Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, _, err := Encode(&buf, src, opts...); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := Expand(bytes.NewReader(buf.Bytes()), out, ExpandOptions{DType: dtype}); err != nil {
		t.Fatal(err)
	}
	return out, buf.Bytes()
}

func openST(t *testing.T, path string) *safetensors.File {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestGolden checks the output at density 0.1, alpha 1, global scope
// against what the ComPEFT paper's code computed for each fixture.
func TestGolden(t *testing.T) {
	for _, name := range []string{"python-lora-r16", "python-lora-r16-bf16", "c-ia3"} {
		t.Run(name, func(t *testing.T) {
			out, _ := compressDir(t, filepath.Join("testdata/peft", name), "", WithDensity(0.1), WithAlpha(Alpha{Value: 1}))
			diff, total := compareST(t, filepath.Join(out, AdapterWeightsFile), filepath.Join("testdata/golden", name+"-d0.1-a1", AdapterWeightsFile))
			t.Logf("%s: %d of %d elements differ from the golden output", name, diff, total)
			if diff != 0 {
				t.Fatalf("%d elements differ", diff)
			}
		})
	}
}

// compareST compares two safetensors files tensor by tensor (names,
// dtypes, shapes, metadata, bytes) and returns the differing elements.
func compareST(t *testing.T, gotPath, wantPath string) (diff, total int64) {
	t.Helper()
	got, want := openST(t, gotPath), openST(t, wantPath)
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("%d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	if got.Metadata["format"] != want.Metadata["format"] {
		t.Fatalf("metadata %v, want %v", got.Metadata, want.Metadata)
	}
	for i, wt := range want.Tensors {
		gt := got.Tensors[i]
		if gt.Name != wt.Name || gt.DType != wt.DType || !equalShape(gt.Shape, wt.Shape) {
			t.Fatalf("tensor %d: %s %s %v, want %s %s %v", i, gt.Name, gt.DType, gt.Shape, wt.Name, wt.DType, wt.Shape)
		}
		gv, err := got.ReadFloat32(gt, nil)
		if err != nil {
			t.Fatal(err)
		}
		wv, err := want.ReadFloat32(wt, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := range wv {
			if math.Float32bits(gv[j]) != math.Float32bits(wv[j]) {
				if diff < 5 {
					t.Logf("%s[%d] = %v, golden %v", wt.Name, j, gv[j], wv[j])
				}
				diff++
			}
		}
		total += int64(len(wv))
	}
	return diff, total
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRoundTripFixtures compresses every fixture with the defaults and
// checks the decompressed adapter: config verbatim, same keys, shapes and
// dtypes, and values equal to the reference semantics in the source dtype.
func TestRoundTripFixtures(t *testing.T) {
	for _, name := range []string{"python-lora-r16", "python-lora-r16-bf16", "python-lora-r16-f16", "c-ia3"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata/peft", name)
			out, data := compressDir(t, dir, "")
			wantCfg, _ := os.ReadFile(filepath.Join(dir, AdapterConfigFile))
			gotCfg, err := os.ReadFile(filepath.Join(out, AdapterConfigFile))
			if err != nil || !bytes.Equal(gotCfg, wantCfg) {
				t.Fatalf("adapter_config.json not restored verbatim (%v)", err)
			}
			src, err := Load(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			ref := refCompeft(src.Tensors, DefaultDensity, Alpha{Auto: true})
			f := openST(t, filepath.Join(out, AdapterWeightsFile))
			orig := openST(t, filepath.Join(dir, AdapterWeightsFile))
			for i, ti := range f.Tensors {
				oi := orig.Tensors[i]
				if ti.Name != oi.Name || ti.DType != oi.DType || !equalShape(ti.Shape, oi.Shape) {
					t.Fatalf("tensor %s %s %v, source %s %s %v", ti.Name, ti.DType, ti.Shape, oi.Name, oi.DType, oi.Shape)
				}
				vals, err := f.ReadFloat32(ti, nil)
				if err != nil {
					t.Fatal(err)
				}
				want := roundTo(ti.DType, ref[i])
				for j := range vals {
					if vals[j] != want[j] {
						t.Fatalf("%s[%d] = %v, want %v", ti.Name, j, vals[j], want[j])
					}
				}
			}
			s := Summarize(mustHeader(t, data), int64(len(data)))
			t.Logf("%s: %d -> %d bytes (%.1fx, %.3f bits/param, payload %.4f x bound)", name, s.SourceBytes, s.FileBytes, s.RatioSource, s.BitsPerParam, s.RatioBound)
			if s.RatioBound > 1.03 {
				t.Errorf("payload is %.4f x the bound", s.RatioBound)
			}
		})
	}
}

// roundTo rounds float32 values as the writer does for dtype.
func roundTo(dt safetensors.DType, v []float32) []float32 {
	out := make([]float32, len(v))
	switch dt {
	case "BF16":
		h := make([]uint16, len(v))
		safetensors.Float32ToBF16(h, v)
		safetensors.BF16ToFloat32(out, h)
	case "F16":
		h := make([]uint16, len(v))
		safetensors.Float32ToF16(h, v)
		safetensors.F16ToFloat32(out, h)
	default:
		copy(out, v)
	}
	return out
}

func mustHeader(t *testing.T, data []byte) *Header {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return r.Header()
}

// TestRoundTripF64 converts a real adapter to F64 and back through the codec.
func TestRoundTripF64(t *testing.T) {
	src := openST(t, "testdata/peft/c-ia3/adapter_model.safetensors")
	dir := t.TempDir()
	cfg, err := os.ReadFile("testdata/peft/c-ia3/adapter_config.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, AdapterConfigFile), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	var names []string
	vals, shapes := map[string][]float32{}, map[string][]int64{}
	for _, ti := range src.Tensors {
		v, err := src.ReadFloat32(ti, nil)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, ti.Name)
		vals[ti.Name], shapes[ti.Name] = v, ti.Shape
	}
	writeModel(t, dir, AdapterWeightsFile, "F64", names, vals, shapes)
	out, _ := compressDir(t, dir, "")
	f := openST(t, filepath.Join(out, AdapterWeightsFile))
	ref := refCompeft(mustLoad(t, dir).Tensors, DefaultDensity, Alpha{Auto: true})
	for i, ti := range f.Tensors {
		if ti.DType != "F64" {
			t.Fatalf("%s written as %s, source F64", ti.Name, ti.DType)
		}
		got, err := f.ReadFloat32(ti, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := range got {
			if got[j] != ref[i][j] {
				t.Fatalf("%s[%d] = %v, want %v", ti.Name, j, got[j], ref[i][j])
			}
		}
	}
}

func mustLoad(t *testing.T, dir string) *Source {
	t.Helper()
	s, err := Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}
