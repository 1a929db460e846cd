package compress

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// refCompeft is a direct, sort-based transcription of the reference
// semantics, used to check the O(n) implementation.
func refCompeft(ts []Tensor, density float64, alpha Alpha) [][]float32 {
	var all []float32
	for _, t := range ts {
		all = append(all, t.Tau...)
	}
	n := len(all)
	abs := make([]float64, n)
	var sum float64
	for i, x := range all {
		abs[i] = math.Abs(float64(x))
		sum += float64(x)
	}
	sorted := append([]float64(nil), abs...)
	sort.Float64s(sorted)
	k := int(math.Floor(float64(n) * density))
	thr := 0.0
	if n-k > 0 {
		thr = sorted[n-k-1]
	}
	mean := sum / float64(n)
	var ssd, keptSum float64
	var keptN int
	for i, x := range all {
		d := float64(x) - mean
		ssd += d * d
		if abs[i] >= thr {
			keptSum += abs[i]
			keptN++
		}
	}
	scale := alpha.Value * math.Sqrt(ssd/float64(n-1))
	if alpha.Auto {
		scale = keptSum / float64(keptN)
	}
	var out [][]float32
	for _, t := range ts {
		o := make([]float32, len(t.Tau))
		for i, x := range t.Tau {
			o[i] = t.Offset
			if math.Abs(float64(x)) >= thr && x != 0 {
				if x > 0 {
					o[i] = float32(float64(t.Offset) + scale)
				} else {
					o[i] = float32(float64(t.Offset) - scale)
				}
			}
		}
		out = append(out, o)
	}
	return out
}

func synthTensors(rng *rand.Rand, sizes []int, offset float32) []Tensor {
	var ts []Tensor
	for i, n := range sizes {
		t := Tensor{Name: string(rune('a'+i)) + ".weight", DType: "F32", Shape: []int64{int64(n)}, Offset: offset}
		t.Tau = make([]float32, n)
		sd := float32(i+1) * 0.01
		for j := range t.Tau {
			t.Tau[j] = float32(rng.NormFloat64()) * sd
		}
		ts = append(ts, t)
	}
	return ts
}

func roundTrip(t *testing.T, ts []Tensor, opts ...Option) ([][]float32, *Header, int64) {
	t.Helper()
	coded, err := Compress(ts, opts...)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	h := Header{PeftType: "LORA", Density: 0.2, Alpha: "auto", Scope: ScopeGlobal}
	size, err := Write(&buf, h, coded)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(buf.Len()) {
		t.Fatalf("Write reported %d bytes, wrote %d", size, buf.Len())
	}
	r, err := NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]float32
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		v, err := r.Values(nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out, r.Header(), size
}

func TestCompressMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		density float64
		alpha   Alpha
		offset  float32
	}{
		{0.1, Alpha{Value: 1}, 0},
		{0.2, Alpha{Auto: true}, 0},
		{0.01, Alpha{Value: 2.5}, 1},
		{0.5, Alpha{Auto: true}, 0},
		{0.7, Alpha{Value: 1}, 0}, // dense mode
		{1, Alpha{Auto: true}, 1},
	} {
		ts := synthTensors(rng, []int{1000, 37, 5000, 1}, tc.offset)
		ts[0].Tau[3] = 0 // zeros are never kept as signs
		got, _, _ := roundTrip(t, ts, WithDensity(tc.density), WithAlpha(tc.alpha))
		want := refCompeft(ts, tc.density, tc.alpha)
		for i := range want {
			for j := range want[i] {
				if got[i][j] != want[i][j] {
					t.Fatalf("d=%v alpha=%v tensor %d elem %d: got %v want %v", tc.density, tc.alpha, i, j, got[i][j], want[i][j])
				}
			}
		}
	}
}

func TestTiesKeepEverythingAtThreshold(t *testing.T) {
	// 10 elements, 4 distinct magnitudes; density 0.3 -> k=3, threshold is
	// the 7th smallest |x|, which ties with others.
	tau := []float32{1, -1, 2, -2, 2, 3, -3, 3, 2, 1}
	ts := []Tensor{{Name: "x", DType: "F32", Shape: []int64{10}, Tau: tau}}
	got, _, _ := roundTrip(t, ts, WithDensity(0.3), WithAlpha(Alpha{Value: 1}))
	kept := 0
	for _, v := range got[0] {
		if v != 0 {
			kept++
		}
	}
	// sorted |x|: 1 1 1 2 2 2 2 3 3 3; the 7th smallest is 2, so all four
	// 2s are kept with the three 3s: 7 kept where k = 3.
	if kept != 7 {
		t.Fatalf("kept %d, want 7 (all ties at the threshold)", kept)
	}
}

func TestScopeTensor(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ts := synthTensors(rng, []int{1000, 3000}, 0)
	got, h, _ := roundTrip(t, ts, WithDensity(0.1), WithScope(ScopeTensor), WithAlpha(Alpha{Value: 1}))
	for i := range ts {
		want := refCompeft(ts[i:i+1], 0.1, Alpha{Value: 1})[0]
		for j := range want {
			if got[i][j] != want[j] {
				t.Fatalf("tensor %d elem %d: got %v want %v", i, j, got[i][j], want[j])
			}
		}
	}
	if h.Tensors[0].Scale == h.Tensors[1].Scale {
		t.Fatal("per-tensor scope gave one scale to tensors of different spread")
	}
}

func TestRejectsNonFinite(t *testing.T) {
	ts := []Tensor{{Name: "x", DType: "F32", Shape: []int64{3}, Tau: []float32{1, float32(math.NaN()), 2}}}
	if _, err := Compress(ts); !errors.Is(err, ErrNonFinite) {
		t.Fatalf("NaN: got %v", err)
	}
	ts[0].Tau[1] = float32(math.Inf(-1))
	if _, err := Compress(ts); !errors.Is(err, ErrNonFinite) {
		t.Fatalf("Inf: got %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Option{WithDensity(0), WithDensity(1.5), WithDensity(math.NaN()), WithScope("layer"), WithAlpha(Alpha{Value: -1})} {
		if _, err := Compress(nil, o); !errors.Is(err, ErrOption) {
			t.Fatalf("got %v, want ErrOption", err)
		}
	}
	for _, s := range []string{"zero", "0", "-1", "NaN", "Inf", "1e7"} { // 1e7: over the 1e6 bound
		if _, err := ParseAlpha(s); !errors.Is(err, ErrOption) {
			t.Fatalf("ParseAlpha(%q) = %v, want ErrOption", s, err)
		}
	}
	for _, s := range []string{"auto", "AUTO", "1", "0.5", "1e6"} {
		if _, err := ParseAlpha(s); err != nil {
			t.Fatalf("ParseAlpha(%q) = %v", s, err)
		}
	}
}

// TestSizeNearBound checks the payload against the entropy bound
// n*(H(d)+d) bits on an i.i.d. vector at several densities.
func TestSizeNearBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	ts := synthTensors(rng, []int{1 << 20}, 0)
	for _, d := range []float64{0.01, 0.05, 0.1, 0.2, 0.5, 0.8, 0.95} {
		coded, err := Compress(ts, WithDensity(d))
		if err != nil {
			t.Fatal(err)
		}
		n := int64(1 << 20)
		bound := BoundBits(n, coded[0].Kept)
		ratio := float64(coded[0].Bytes*8) / bound
		t.Logf("d=%.2f payload %d bytes, bound %.0f bytes, ratio %.4f", d, coded[0].Bytes, bound/8, ratio)
		if ratio > 1.03 {
			t.Errorf("d=%v: payload %.4f x the bound", d, ratio)
		}
	}
}
