package compress

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// encodeSrc encodes src and returns the container and its decoded tensors.
func encodeSrc(t *testing.T, src *Source, opts ...Option) ([]byte, *Source) {
	t.Helper()
	var buf bytes.Buffer
	if _, _, err := Encode(&buf, src, opts...); err != nil {
		t.Fatal(err)
	}
	dec, err := ReadSource(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), dec
}

// productError is sum over modules of ||B̂ Â - B A||^2 / ||B A||^2, the
// relative error of the weight updates.
func productError(t *testing.T, orig, dec *Source) float64 {
	t.Helper()
	pairs, _, err := loraPairs(orig.Tensors)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string][]float32{}
	for _, x := range dec.Tensors {
		byName[x.Name] = x.Tau
	}
	var num, den float64
	for _, p := range pairs {
		a, b := orig.Tensors[p.A], orig.Tensors[p.B]
		var want, got, diff mat.Dense
		want.Mul(mat.NewDense(p.Out, p.R, to64(b.Tau)), mat.NewDense(p.R, p.In, to64(a.Tau)))
		got.Mul(mat.NewDense(p.Out, p.R, to64(byName[b.Name])), mat.NewDense(p.R, p.In, to64(byName[a.Name])))
		diff.Sub(&got, &want)
		num += math.Pow(mat.Norm(&diff, 2), 2)
		den += math.Pow(mat.Norm(&want, 2), 2)
	}
	return num / den
}

func loadFixture(t *testing.T, name string) *Source {
	t.Helper()
	src, err := Load(filepath.Join("testdata/peft", name), "")
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestRefitReducesProductError checks on a real LoRA that the refit keeps
// the weight update closer than plain ComPEFT at the same density, in a
// container of (almost) the same size.
func TestRefitReducesProductError(t *testing.T) {
	src := loadFixture(t, "python-lora-r16")
	for _, d := range []float64{0.1, 0.2} {
		plainBytes, plain := encodeSrc(t, src, WithDensity(d))
		refitBytes, refit := encodeSrc(t, src, WithDensity(d), WithRefit(DefaultRefit))
		ep, er := productError(t, src, plain), productError(t, src, refit)
		ratio := float64(len(refitBytes)) / float64(len(plainBytes))
		t.Logf("d=%v: relative product error plain %.4f refit %.4f; bytes %d vs %d (%.4f)", d, ep, er, len(plainBytes), len(refitBytes), ratio)
		if !(er < 0.97*ep) {
			t.Errorf("d=%v: refit error %.4f not 3%% below plain %.4f", d, er, ep)
		}
		if math.Abs(ratio-1) > 0.02 {
			t.Errorf("d=%v: refit container is %.4f x the plain one, want within 2%%", d, ratio)
		}
	}
}

// TestRefitVariants logs the product error of the refit's variants (for
// choosing DefaultRefit); it checks that each is no worse than plain.
func TestRefitVariants(t *testing.T) {
	src := loadFixture(t, "python-lora-r16")
	_, plain := encodeSrc(t, src, WithDensity(0.2))
	ep := productError(t, src, plain)
	for _, r := range []Refit{{1, false}, {1, true}} {
		for _, scope := range []string{ScopeGlobal, ScopeTensor} {
			b, dec := encodeSrc(t, src, WithDensity(0.2), WithScope(scope), WithRefit(r))
			e := productError(t, src, dec)
			t.Logf("rounds %d balanced %v scope %s: error %.4f (plain global %.4f), %d bytes", r.Rounds, r.Balanced, scope, e, ep, len(b))
			if scope == ScopeGlobal && e > ep*(1+1e-9) {
				t.Errorf("refit %+v: error %.4f above plain %.4f", r, e, ep)
			}
		}
	}
}

func TestRefitRefusesNonLoRA(t *testing.T) {
	src := loadFixture(t, "c-ia3")
	var buf bytes.Buffer
	_, _, err := Encode(&buf, src, WithRefit(DefaultRefit))
	if !errors.Is(err, ErrOption) {
		t.Fatalf("IA3 with refit: err %v, want ErrOption", err)
	}
	if buf.Len() != 0 {
		t.Fatalf("wrote %d bytes", buf.Len())
	}
	src.PeftType = PeftTypeFull
	if _, _, err := Encode(&buf, src, WithRefit(DefaultRefit)); !errors.Is(err, ErrOption) {
		t.Fatalf("residual with refit: err %v, want ErrOption", err)
	}
	lora := loadFixture(t, "python-lora-r16")
	if _, _, err := Encode(&buf, lora, WithRefit(DefaultRefit), WithAlpha(Alpha{Value: 1})); !errors.Is(err, ErrOption) {
		t.Fatalf("refit with alpha 1: err %v, want ErrOption", err)
	}
}

// TestCodeKept checks that coding a ternary tensor from its kept positions
// gives the bytes the codec gives for its values, in both codes.
func TestCodeKept(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, density := range []float64{0.05, 0.3, 0.8} {
		tau := make([]float32, 999)
		var pos []uint32
		for i := range tau {
			if rng.Float64() < density {
				tau[i] = float32(1 - 2*rng.IntN(2))
				pos = append(pos, uint32(i)<<1|math.Float32bits(tau[i])>>31)
			}
		}
		tn := Tensor{Name: "m.lora_A.weight", DType: "F32", Shape: []int64{27, 37}, Tau: tau}
		var want, got Coded
		var sc scratch
		codeOne(&want, tn, 1, &sc)
		codeKept(&got, tn, pos, &sc)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("density %v (%s code): codeKept %+v, codeOne %+v", density, want.Mode, got.TensorHeader, want.TensorHeader)
		}
	}
}

// A module whose rank exceeds its smaller side (no trained adapter has
// one; a crafted one could ask the refit for r x r work of any size) keeps
// the plain codec's factors; the others are refitted.
func TestRefitLeavesOversizedRank(t *testing.T) {
	big := synthLoRAShape(1, 12, 10, 40) // rank 40 > min(12, 10)
	fine := synthLoRAShape(1, 96, 80, 8) // refitted
	for i := range fine {
		fine[i].Name = "z." + fine[i].Name // a module of its own, after big's
	}
	src := &Source{PeftType: PeftTypeLoRA, Tensors: append(append([]Tensor(nil), big...), fine...)}
	_, plain := encodeSrc(t, src, WithScope(ScopeTensor))
	_, refit := encodeSrc(t, src, WithScope(ScopeTensor), WithRefit(DefaultRefit))
	same := func(name string) bool {
		var a, b []float32
		for _, x := range plain.Tensors {
			if x.Name == name {
				a = x.Tau
			}
		}
		for _, x := range refit.Tensors {
			if x.Name == name {
				b = x.Tau
			}
		}
		return reflect.DeepEqual(a, b)
	}
	for _, x := range big {
		if !same(x.Name) {
			t.Errorf("%s (rank 40 on a 12 x 10 module) was refitted", x.Name)
		}
	}
	changed := false
	for _, x := range fine {
		changed = changed || !same("z."+x.Name[2:])
	}
	if !changed {
		t.Error("the rank-8 module was not refitted either: the test shows nothing")
	}
}
