package compress

import (
	"bytes"
	"errors"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
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

// TestExpandOutputDir: a directory holding files is refused unless
// Overwrite, a missing one is created, and the directories Expand created
// are removed when it fails.
func TestExpandOutputDir(t *testing.T) {
	good := fixtureContainer(t, "c-ia3")
	bad := append([]byte(nil), good...)
	bad[len(bad)-10] ^= 0xff
	root := t.TempDir()

	full := filepath.Join(root, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "authorized_keys"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Expand(bytes.NewReader(good), full, ExpandOptions{}); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("non-empty directory: %v", err)
	}
	if ents, _ := os.ReadDir(full); len(ents) != 1 {
		t.Fatalf("%d entries after a refused expand", len(ents))
	}
	if _, err := Expand(bytes.NewReader(good), full, ExpandOptions{Overwrite: true}); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(full, "authorized_keys")); string(b) != "mine" {
		t.Fatal("overwrite touched a file Expand does not write")
	}

	deep := filepath.Join(root, "a", "b", "c")
	if _, err := Expand(bytes.NewReader(bad), deep, ExpandOptions{}); !errors.Is(err, ErrChecksum) {
		t.Fatalf("corrupt: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed expand left the directories it made (%v)", err)
	}
	if _, err := Expand(bytes.NewReader(good), deep, ExpandOptions{}); err != nil {
		t.Fatal(err)
	}
	// A failed overwrite leaves the directory (not Expand's) and its files.
	if _, err := Expand(bytes.NewReader(bad), deep, ExpandOptions{Overwrite: true}); !errors.Is(err, ErrChecksum) {
		t.Fatalf("corrupt overwrite: %v", err)
	}
	if ents, _ := os.ReadDir(deep); len(ents) != 2 {
		t.Fatalf("%d entries after a failed overwrite, want the 2 written before", len(ents))
	}
}

// TestExpandLimits: the declared output, weights header and config
// included, may equal the limit; one byte less is refused; a negative
// limit is none; Accept can refuse before anything is written.
func TestExpandLimits(t *testing.T) {
	data := fixtureContainer(t, "c-ia3")
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	need, err := OutputBytes(r.Header(), "")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := Expand(bytes.NewReader(data), out, ExpandOptions{MaxOutput: need - 1}); !errors.Is(err, ErrOutputLimit) {
		t.Fatalf("limit %d for %d bytes: %v", need-1, need, err)
	}
	if _, err := Expand(bytes.NewReader(data), out, ExpandOptions{statfs: freeSpace(need - 1 + 1<<30)}); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("free space one byte short: %v", err)
	}
	refuse := errors.New("not wanted")
	if _, err := Expand(bytes.NewReader(data), out, ExpandOptions{Accept: func(*Header) error { return refuse }}); err != refuse {
		t.Fatalf("Accept: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a refused expand created its directory")
	}
	if _, err := Expand(bytes.NewReader(data), out, ExpandOptions{MaxOutput: need, statfs: freeSpace(need + 1<<30)}); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	var written int64
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		info, _ := e.Info()
		written += info.Size()
	}
	if written != need {
		t.Fatalf("wrote %d bytes, OutputBytes said %d", written, need)
	}
	if _, err := Expand(bytes.NewReader(data), filepath.Join(t.TempDir(), "x"), ExpandOptions{MaxOutput: -1}); err != nil {
		t.Fatalf("no limit: %v", err)
	}
}

func TestParamsOutputBytes(t *testing.T) {
	for _, c := range []struct {
		params int64
		dtype  string
		want   int64
	}{
		{1000, "", 8000}, {1000, "source", 8000}, {1000, "bf16", 2000}, {1000, "F32", 4000},
		{-5, "", 0}, {math.MaxInt64 / 2, "", math.MaxInt64}, {1000, "int8", 8000},
	} {
		if got := ParamsOutputBytes(c.params, c.dtype); got != c.want {
			t.Errorf("ParamsOutputBytes(%d, %q) = %d, want %d", c.params, c.dtype, got, c.want)
		}
	}
	if err := CheckOutput(ParamsOutputBytes(1<<31+1, ""), 0); !errors.Is(err, ErrOutputLimit) {
		t.Errorf("2^31+1 params of unknown dtype under the default limit: %v", err)
	}
	if err := CheckOutput(ParamsOutputBytes(1<<31, "bf16"), 0); err != nil {
		t.Errorf("2^31 BF16 params: %v", err)
	}
}
