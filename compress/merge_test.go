package compress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

const loraCfg = `{"peft_type": "LORA", "r": %R%, "lora_alpha": %A%, "target_modules": ["q", "v"], "base_model_name_or_path": null}`

func loraConfig(r, alpha string) string {
	return strings.NewReplacer("%R%", r, "%A%", alpha).Replace(loraCfg)
}

// tinyLoRA is a one-module LoRA adapter with the given factors.
func tinyLoRA(r int, alpha string, a, b []float32, out, in int) *Source {
	return &Source{PeftType: PeftTypeLoRA, ConfigName: AdapterConfigFile, Config: loraConfig(itoa(r), alpha),
		Metadata: map[string]string{"format": "pt"},
		Tensors: []Tensor{
			{Name: "m.q.lora_B.weight", DType: "F32", Shape: []int64{int64(out), int64(r)}, Tau: b},
			{Name: "m.q.lora_A.weight", DType: "F32", Shape: []int64{int64(r), int64(in)}, Tau: a},
		}}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// deltaW returns the weight update lora_alpha/r * B A of every module of
// a merged or input LoRA source, by module name.
func deltaW(t *testing.T, s *Source) map[string]*mat.Dense {
	t.Helper()
	cfg, err := parsePeftConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	pairs, _, err := loraPairs(s.Tensors)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*mat.Dense{}
	for _, p := range pairs {
		sc, err := cfg.scale(p.R)
		if err != nil {
			t.Fatal(err)
		}
		var d mat.Dense
		d.Mul(mat.NewDense(p.Out, p.R, to64(s.Tensors[p.B].Tau)), mat.NewDense(p.R, p.In, to64(s.Tensors[p.A].Tau)))
		d.Scale(sc, &d)
		out[p.Module] = &d
	}
	return out
}

func TestMergeTAHandChecked(t *testing.T) {
	// dW1 = 1/1 * [1 0]^T [1 2] = [[1 2] [0 0]]
	// dW2 = 2/1 * [0 1]^T [3 4] = [[0 0] [6 8]]
	e1 := tinyLoRA(1, "1", []float32{1, 2}, []float32{1, 0}, 2, 2)
	e2 := tinyLoRA(1, "2", []float32{3, 4}, []float32{0, 1}, 2, 2)
	m, prov, err := Merge(context.Background(), []MergeInput{{Name: "e1", Source: e1}, {Name: "e2", Source: e2, CID: "bafk-e2"}},
		MergeOptions{Method: MergeTA, Lambda: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	got := deltaW(t, m)["m.q"]
	want := mat.NewDense(2, 2, []float64{0.5, 1, 3, 4})
	if !mat.EqualApprox(got, want, 1e-6) {
		t.Fatalf("merged dW = %v, want %v", mat.Formatted(got), mat.Formatted(want))
	}
	cfg, _ := parsePeftConfig(m.Config)
	if cfg.R.String() != "2" || cfg.LoraAlpha.String() != "2" {
		t.Fatalf("config r=%s lora_alpha=%s, want 2 and 2", cfg.R, cfg.LoraAlpha)
	}
	if cfg.targets() != `["q","v"]` {
		t.Fatalf("target_modules %s", cfg.targets())
	}
	if prov.Rank != 2 || len(prov.Parents) != 2 || prov.Parents[1].CID != "bafk-e2" {
		t.Fatalf("provenance %+v", prov)
	}
	var p Provenance
	if err := json.Unmarshal([]byte(m.Metadata[MergeMetadataKey]), &p); err != nil || p.Method != MergeTA || p.Lambda != 0.5 {
		t.Fatalf("metadata %q: %v", m.Metadata[MergeMetadataKey], err)
	}
}

func ia3Source(taus ...[]float32) *Source {
	return &Source{PeftType: PeftTypeIA3, ConfigName: AdapterConfigFile,
		Config:  `{"peft_type": "IA3", "target_modules": ["k"], "feedforward_modules": []}`,
		Tensors: []Tensor{{Name: "m.k.ia3_l", DType: "F32", Shape: []int64{int64(len(taus[0]))}, Tau: taus[0], Offset: 1}}}
}

func TestMergeTIESHandChecked(t *testing.T) {
	// trim 0.5 keeps 2 of 4 per expert (ties: the earlier index):
	// [3 0 2 0], [-4 1 0 0], [2 0 -3 0]; elected signs + + - (none);
	// disjoint means (3+2)/2, 1, -3, 0.
	in := []MergeInput{
		{Name: "a", Source: ia3Source([]float32{3, -1, 2, 0.5})},
		{Name: "b", Source: ia3Source([]float32{-4, 1, 1, 0.1})},
		{Name: "c", Source: ia3Source([]float32{2, 0.2, -3, 0})},
	}
	m, _, err := Merge(context.Background(), in, MergeOptions{Method: MergeTIES, Trim: 0.5, Lambda: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{2.5, 1, -3, 0}
	if got := m.Tensors[0].Tau; !equalF32(got, want) || m.Tensors[0].Offset != 1 {
		t.Fatalf("TIES = %v offset %v, want %v offset 1", got, m.Tensors[0].Offset, want)
	}
	// Task arithmetic with weights: 0.5*(1*a + 2*b + 0*c).
	m, _, err = Merge(context.Background(), in, MergeOptions{Method: MergeTA, Lambda: 0.5, Weights: []float64{1, 2, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Tensors[0].Tau, []float32{-2.5, 0.5, 2, 0.35}; !approxF32(got, want, 1e-6) {
		t.Fatalf("TA = %v, want %v", got, want)
	}
}

func equalF32(a, b []float32) bool {
	return approxF32(a, b, 0)
}

func approxF32(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > tol {
			return false
		}
	}
	return true
}

// randomLoRALike returns an adapter with the modules of src at rank r.
func randomLoRALike(t *testing.T, src *Source, r int, alpha string, seed uint64) *Source {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	pairs, _, err := loraPairs(src.Tensors)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(strings.Replace(src.Config, `"r": 16`, `"r": `+itoa(r), 1), `"lora_alpha": 32`, `"lora_alpha": `+alpha, 1)
	out := &Source{PeftType: src.PeftType, ConfigName: src.ConfigName, Config: cfg, Metadata: src.Metadata}
	fill := func(n int, sd float64) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * sd)
		}
		return x
	}
	for _, p := range pairs {
		out.Tensors = append(out.Tensors,
			Tensor{Name: src.Tensors[p.A].Name, DType: "F32", Shape: []int64{int64(r), int64(p.In)}, Tau: fill(r*p.In, 0.05)},
			Tensor{Name: src.Tensors[p.B].Name, DType: "F32", Shape: []int64{int64(p.Out), int64(r)}, Tau: fill(p.Out*r, 0.01)})
	}
	return out
}

// TestMergeProductSpace merges a real r16 expert with an r8 one (another
// lora_alpha) and checks every module against a dense reference: task
// arithmetic exactly at the default rank, TIES at the optimal truncation
// error of the dense TIES update.
func TestMergeProductSpace(t *testing.T) {
	py := block0(loadFixture(t, "python-lora-r16"))
	other := randomLoRALike(t, py, 8, "4", 3)
	in := []MergeInput{{Name: "py", Source: py}, {Name: "other", Source: other}}
	d1, d2 := deltaW(t, py), deltaW(t, other)

	m, prov, err := Merge(context.Background(), in, MergeOptions{Method: MergeTA, Lambda: 0.4, Weights: []float64{1, 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	if prov.Rank != 24 {
		t.Fatalf("rank %d, want 16+8", prov.Rank)
	}
	for mod, got := range deltaW(t, m) {
		var want mat.Dense
		want.Scale(0.4, d1[mod])
		var w2 mat.Dense
		w2.Scale(0.2, d2[mod])
		want.Add(&want, &w2)
		if e := relErr(got, &want); e > 1e-5 {
			t.Fatalf("TA module %s: relative error %g", mod, e)
		}
	}

	const rank = 12
	m, _, err = Merge(context.Background(), in, MergeOptions{Method: MergeTIES, Rank: rank})
	if err != nil {
		t.Fatal(err)
	}
	for mod, got := range deltaW(t, m) {
		ref := denseTIES([]*mat.Dense{d1[mod], d2[mod]}, DefaultTIESTrim, DefaultLambdaTIES)
		var svd mat.SVD
		if !svd.Factorize(ref, mat.SVDNone) {
			t.Fatal("svd")
		}
		var tail float64
		for _, s := range svd.Values(nil)[rank:] {
			tail += s * s
		}
		var diff mat.Dense
		diff.Sub(got, ref)
		e := mat.Norm(&diff, 2)
		if opt := math.Sqrt(tail); e > opt*1.001+1e-9 {
			t.Fatalf("TIES module %s: error %g, optimal rank-%d error %g", mod, e, rank, opt)
		}
	}
}

// denseTIES is TIES written out directly from the paper, on dense updates.
func denseTIES(ds []*mat.Dense, trim, lambda float64) *mat.Dense {
	r, c := ds[0].Dims()
	n := r * c
	trimmed := make([][]float64, len(ds))
	for i, d := range ds {
		x := d.RawMatrix().Data
		mags := make([]float64, n)
		for e, v := range x {
			mags[e] = math.Abs(v)
		}
		sorted := append([]float64(nil), mags...)
		slicesSortDesc(sorted)
		k := int(math.Floor(float64(n) * trim))
		thr := sorted[k-1]
		trimmed[i] = make([]float64, n)
		for e, v := range x {
			if mags[e] >= thr {
				trimmed[i][e] = v
			}
		}
	}
	out := make([]float64, n)
	for e := 0; e < n; e++ {
		var sum float64
		for i := range ds {
			sum += trimmed[i][e]
		}
		var s float64
		var cnt int
		for i := range ds {
			v := trimmed[i][e]
			if v != 0 && (v > 0) == (sum > 0) {
				s += v
				cnt++
			}
		}
		if cnt > 0 {
			out[e] = lambda * s / float64(cnt)
		}
	}
	return mat.NewDense(r, c, out)
}

func slicesSortDesc(x []float64) {
	sort.Float64s(x)
	for i, j := 0, len(x)-1; i < j; i, j = i+1, j-1 {
		x[i], x[j] = x[j], x[i]
	}
}

func relErr(got, want *mat.Dense) float64 {
	var d mat.Dense
	d.Sub(got, want)
	return mat.Norm(&d, 2) / mat.Norm(want, 2)
}

// TestTruncatedSVDError checks the randomized SVD against the optimum
// (Eckart-Young) on a matrix with a slowly decaying spectrum, and the
// factored SVD against the dense one.
func TestTruncatedSVDError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const m, n, k = 400, 300, 16
	x := mat.NewDense(m, n, nil)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			x.Set(i, j, rng.NormFloat64())
		}
	}
	// Give it a spectrum s_i = 1/sqrt(i+1) plus the noise floor.
	ex, err := exactSVD(x, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ex.S {
		ex.S[i] = 10/math.Sqrt(float64(i+1)) + 0.1
	}
	x = reconstruct(ex)
	var tail float64
	for _, s := range ex.S[k:] {
		tail += s * s
	}
	opt := math.Sqrt(tail)
	rs, err := randomizedSVD(x, k, rsvdOversample, rsvdIters)
	if err != nil {
		t.Fatal(err)
	}
	var diff mat.Dense
	diff.Sub(reconstruct(rs), x)
	e := mat.Norm(&diff, 2)
	t.Logf("rank %d: randomized error %.5f, optimal %.5f (%.4f x)", k, e, opt, e/opt)
	if e > 1.01*opt {
		t.Fatalf("randomized SVD error %.5f > 1.01 x optimal %.5f", e, opt)
	}

	b := mat.NewDense(300, 10, nil)
	a := mat.NewDense(10, 200, nil)
	for _, d := range []*mat.Dense{a, b} {
		raw := d.RawMatrix().Data
		for i := range raw {
			raw[i] = rng.NormFloat64()
		}
	}
	var p mat.Dense
	p.Mul(b, a)
	lr, err := lowRankSVD(b, a, 6)
	if err != nil {
		t.Fatal(err)
	}
	dn, err := exactSVD(&p, 6)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(reconstruct(lr), reconstruct(dn)); e > 1e-9 {
		t.Fatalf("factored SVD differs from the dense one by %g", e)
	}
}

func reconstruct(s svdResult) *mat.Dense {
	u := mat.DenseCopyOf(s.U)
	m, k := u.Dims()
	for j := 0; j < k; j++ {
		for i := 0; i < m; i++ {
			u.Set(i, j, u.At(i, j)*s.S[j])
		}
	}
	var x mat.Dense
	x.Mul(u, s.V.T())
	return &x
}

func TestMergeRefusesMismatches(t *testing.T) {
	py := loadFixture(t, "python-lora-r16")
	ia3 := loadFixture(t, "c-ia3")
	cases := []struct {
		name  string
		other *Source
		want  string
	}{
		{"peft type", ia3, "PEFT type"},
		{"targets", withConfig(py, strings.Replace(py.Config, `"proj"`, `"out"`, 1)), "target_modules"},
		{"modules", &Source{PeftType: py.PeftType, Config: py.Config, Tensors: py.Tensors[2:]}, "LoRA modules"},
		{"base", withConfig(py, strings.Replace(py.Config, `"base_model_name_or_path": null`, `"base_model_name_or_path": "gpt-x"`, 1)), ""},
		{"dora", withConfig(py, strings.Replace(py.Config, `"use_dora": false`, `"use_dora": true`, 1)), "DoRA"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Merge(context.Background(), []MergeInput{{Name: "python", Source: py}, {Name: "other", Source: c.other}}, MergeOptions{})
			if c.want == "" { // base set on one side only: allowed
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want ErrInput naming %q", err, c.want)
			}
		})
	}
	bad := []MergeOptions{{Method: "avg"}, {Weights: []float64{1}}, {Method: MergeTIES, Trim: 1.5}, {Lambda: math.NaN()}, {Rank: -1}}
	for _, o := range bad {
		if _, _, err := Merge(context.Background(), []MergeInput{{Name: "a", Source: py}, {Name: "b", Source: py}}, o); !errors.Is(err, ErrOption) {
			t.Fatalf("%+v: err %v, want ErrOption", o, err)
		}
	}
	if _, _, err := Merge(context.Background(), []MergeInput{{Name: "a", Source: py}}, MergeOptions{}); !errors.Is(err, ErrOption) {
		t.Fatalf("one input: err %v", err)
	}
}

func withConfig(s *Source, cfg string) *Source {
	c := *s
	c.Config = cfg
	return &c
}

// TestMergeContainers merges compressed experts read back from their
// containers and checks the output container's config and provenance.
func TestMergeContainers(t *testing.T) {
	py := block0(loadFixture(t, "python-lora-r16"))
	other := randomLoRALike(t, py, 16, "32", 9)
	var in []MergeInput
	for i, s := range []*Source{py, other} {
		var buf bytes.Buffer
		if _, _, err := Encode(&buf, s); err != nil {
			t.Fatal(err)
		}
		dec, err := ReadSource(bytes.NewReader(buf.Bytes()), WithMaxElements(1<<24))
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, MergeInput{Name: []string{"py.cpeft", "other.cpeft"}[i], Source: dec})
	}
	m, _, err := Merge(context.Background(), in, MergeOptions{Method: MergeTIES, Rank: 16})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	h, _, err := Encode(&buf, m, WithDensity(0.3))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Tensors) != len(py.Tensors) {
		t.Fatalf("%d merged tensors, want %d", len(h.Tensors), len(py.Tensors))
	}
	for _, th := range h.Tensors {
		if r := th.Shape[strings.Count(th.Name, "lora_B")]; r != 16 { // A is [r, in], B is [out, r]
			t.Fatalf("tensor %s has shape %v, want rank 16", th.Name, th.Shape)
		}
	}
	var p Provenance
	if err := json.Unmarshal([]byte(h.Metadata[MergeMetadataKey]), &p); err != nil || p.Parents[0].Name != "py.cpeft" ||
		p.Trim != DefaultTIESTrim || p.Lambda != DefaultLambdaTIES {
		t.Fatalf("provenance %q: %v", h.Metadata[MergeMetadataKey], err)
	}
	if h.Metadata["format"] != "pt" {
		t.Fatalf("metadata %v lost format", h.Metadata)
	}
}

func TestMergeCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	py := loadFixture(t, "python-lora-r16")
	if _, _, err := Merge(ctx, []MergeInput{{Name: "a", Source: py}, {Name: "b", Source: py}}, MergeOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

// block0 keeps one block's four modules of a fixture, to keep tests fast.
func block0(s *Source) *Source {
	var ts []Tensor
	for _, x := range s.Tensors {
		if strings.Contains(x.Name, "blocks.0.") {
			ts = append(ts, x)
		}
	}
	s.Tensors = ts
	return s
}
