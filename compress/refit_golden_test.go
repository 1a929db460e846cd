package compress

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"testing"
)

var updateRefit = flag.Bool("update-refit", false, "rewrite testdata/refit/golden.json from the current refit")

const refitGoldenFile = "testdata/refit/golden.json"

// refitPrint is what the refit chose for one tensor: a digest of its sign
// pattern (one byte per element: 0 dropped, 1 plus, 2 minus) and its scale.
type refitPrint struct {
	Signs string  `json:"signs"`
	Scale float64 `json:"scale"`
}

// refitGoldenCases are the inputs and settings the golden file covers: the
// real adapter at three densities and in every mode, and synthetic modules
// of odd ranks and unequal sides.
func refitGoldenCases(t *testing.T) []struct {
	name string
	ts   []Tensor
	opts []Option
} {
	py := loadFixture(t, "python-lora-r16").Tensors
	odd := skewed(synthLoRAShape(3, 96, 80, 5), 0.9)
	r64 := skewed(synthLoRAShape(2, 256, 320, 64), 0.98)
	r1 := synthLoRAShape(2, 40, 24, 1)
	d := WithDensity
	return []struct {
		name string
		ts   []Tensor
		opts []Option
	}{
		{"python d0.1", py, []Option{d(0.1), WithRefit(DefaultRefit)}},
		{"python d0.2", py, []Option{d(0.2), WithRefit(DefaultRefit)}},
		{"python d0.3", py, []Option{d(0.3), WithRefit(DefaultRefit)}},
		{"python d0.2 rounds2", py, []Option{d(0.2), WithRefit(Refit{Rounds: 2})}},
		{"python d0.2 rounds1 balanced", py, []Option{d(0.2), WithRefit(Refit{Rounds: 1, Balanced: true})}},
		{"python d0.2 tensor", py, []Option{d(0.2), WithScope(ScopeTensor), WithRefit(DefaultRefit)}},
		{"r5 d0.2 rounds2 balanced", odd, []Option{d(0.2), WithRefit(Refit{Rounds: 2, Balanced: true})}},
		{"r64 d0.2", r64, []Option{d(0.2), WithRefit(DefaultRefit)}},
		{"r64 d0.1 rounds1", r64, []Option{d(0.1), WithRefit(Refit{Rounds: 1})}},
		{"r1 d0.3 rounds1 balanced", r1, []Option{d(0.3), WithRefit(Refit{Rounds: 1, Balanced: true})}},
	}
}

// skewed scales rank component j of each LoRA module by f^j in A and by
// (2-f)^j in B: the product's spectrum decays and its stored factors are
// not balanced, as in trained adapters.
func skewed(ts []Tensor, f float64) []Tensor {
	pairs, _, err := loraPairs(ts)
	if err != nil {
		panic(err)
	}
	for _, p := range pairs {
		a, b := ts[p.A].Tau, ts[p.B].Tau
		for j := range p.R {
			for i := range p.In {
				a[j*p.In+i] *= float32(math.Pow(f, float64(j)))
			}
			for i := range p.Out {
				b[i*p.R+j] *= float32(math.Pow(2-f, float64(j)))
			}
		}
	}
	return ts
}

// refitPrints compresses ts and returns each tensor's print, by name.
func refitPrints(t *testing.T, ts []Tensor, opts ...Option) map[string]refitPrint {
	t.Helper()
	coded, err := Compress(ts, opts...)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := Write(&buf, loraHeader(), coded); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	prints := map[string]refitPrint{}
	var vals []float32
	for {
		th, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if vals, err = r.Values(vals); err != nil {
			t.Fatal(err)
		}
		signs := make([]byte, len(vals))
		for i, v := range vals {
			switch {
			case v > 0:
				signs[i] = 1
			case v < 0:
				signs[i] = 2
			}
		}
		sum := sha256.Sum256(signs)
		prints[th.Name] = refitPrint{Signs: hex.EncodeToString(sum[:]), Scale: th.Scale}
	}
	return prints
}

// TestRefitGolden checks that the refit keeps choosing what it chose when
// testdata/refit/golden.json was written (-update-refit): the same kept
// positions and signs in every tensor, and the same scales up to
// floating-point rounding. Faster code must not change what is stored.
func TestRefitGolden(t *testing.T) {
	got := map[string]map[string]refitPrint{}
	for _, c := range refitGoldenCases(t) {
		got[c.name] = refitPrints(t, c.ts, c.opts...)
	}
	if *updateRefit {
		b, err := json.MarshalIndent(got, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(refitGoldenFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(refitGoldenFile)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]map[string]refitPrint
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(got) {
		t.Errorf("golden file has %d cases, the test %d", len(want), len(got))
	}
	for name, gp := range got {
		wp, ok := want[name]
		if !ok || len(wp) != len(gp) {
			t.Errorf("%s: golden file has %d tensors, the refit %d", name, len(wp), len(gp))
			continue
		}
		var worst float64
		for tn, g := range gp {
			w := wp[tn]
			if g.Signs != w.Signs {
				t.Errorf("%s: %s: kept positions or signs changed", name, tn)
			}
			rel := math.Abs(g.Scale-w.Scale) / max(math.Abs(w.Scale), math.SmallestNonzeroFloat64)
			if w.Scale == 0 {
				rel = math.Abs(g.Scale)
			}
			worst = max(worst, rel)
			if rel > 1e-12 {
				t.Errorf("%s: %s: scale %v, golden %v", name, tn, g.Scale, w.Scale)
			}
		}
		t.Logf("%s: %d tensors, largest relative scale difference %.2g", name, len(gp), worst)
	}
}
