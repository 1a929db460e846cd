package compress

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"
)

// TestExpandMemoryBounded expands a 16M-element tensor (64 MiB written),
// alone and as a residual over a base read from disk: Expand allocates its
// chunk and buffers, nothing that grows with the tensor.
func TestExpandMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 64 MiB files")
	}
	const n = 16 << 20
	rng := rand.New(rand.NewPCG(41, 42))
	tau, base := make([]float32, n), make([]float32, n)
	for i := range tau {
		base[i] = float32(i%1000) * 0.001
		if rng.IntN(5) == 0 {
			tau[i] = float32(rng.NormFloat64())
		}
	}
	ts := []Tensor{{Name: "w", DType: "F32", Shape: []int64{n}, Tau: tau}}
	coded, err := Compress(ts, WithDensity(0.2))
	if err != nil {
		t.Fatal(err)
	}
	fp := newFingerprint()
	fp.add("w", base)
	baseDir := filepath.Join(t.TempDir(), "base")
	writeModel(t, baseDir, ModelWeightsFile, "F32", []string{"w"}, map[string][]float32{"w": base}, map[string][]int64{"w": {n}})
	tau, base, ts = nil, nil, nil
	for _, residual := range []bool{false, true} {
		h := loraHeader()
		o := ExpandOptions{}
		if residual {
			h = Header{PeftType: PeftTypeFull, Density: 0.2, Alpha: "auto", Scope: ScopeGlobal, Base: fp.sum()}
			o.BaseDir = baseDir
		}
		var buf bytes.Buffer
		if _, err := Write(&buf, h, coded); err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, err := Expand(bytes.NewReader(buf.Bytes()), filepath.Join(t.TempDir(), "out"), o); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("residual=%v: %d MiB written, %.1f MiB allocated", residual, n*4>>20, float64(alloc)/(1<<20))
		if alloc > 12<<20 {
			t.Fatalf("residual=%v: %d bytes allocated for a %d-byte tensor", residual, alloc, n*4)
		}
	}
}
