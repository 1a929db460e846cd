package compress

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// kernelInput is an n x r factor whose elements spread over many
// magnitudes and both signs, so that any change in how products and sums
// are rounded or ordered shows in the last bits.
func kernelInput(rng *rand.Rand, n, r int) factor {
	d := make([]float64, n*r)
	for i := range d {
		d[i] = rng.NormFloat64() * math.Exp2(float64(rng.IntN(40)-20))
	}
	return factor{n, r, d}
}

// withGo runs f with the Go loops instead of the AVX2 kernels.
func withGo(f func()) {
	defer func(u bool) { useAVX2 = u }(useAVX2)
	useAVX2 = false
	f()
}

func sameBits(t *testing.T, what string, got, want []float64) {
	t.Helper()
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Fatalf("%s: element %d is %v (%#x), the Go loops give %v (%#x)",
				what, i, got[i], math.Float64bits(got[i]), want[i], math.Float64bits(want[i]))
		}
	}
}

// TestRefitKernelsMatchGo: the AVX2 kernels give the Go loops' results
// bit for bit (same products, same order of additions), for ranks with
// and without a remainder of columns, odd numbers of rows included.
func TestRefitKernelsMatchGo(t *testing.T) {
	if !haveAVX2 {
		t.Skip("no AVX2 on this machine: the Go loops are all there is")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, r := range []int{1, 3, 4, 5, 7, 8, 12, 16, 17, 31, 64, 67} {
		for _, n := range []int{1, 2, 5, 8, 67, 130, 200} {
			if r > n+8 {
				continue
			}
			f := kernelInput(rng, n, r)
			w := kernelInput(rng, r, r).d

			g, gGo := make([]float64, r*r), make([]float64, r*r)
			gram(g, f)
			withGo(func() { gram(gGo, f) })
			sameBits(t, "gram", g, gGo)

			d, dGo := make([]float64, n*r), make([]float64, n*r)
			mul(d, f, w)
			withGo(func() { mul(dGo, f, w) })
			sameBits(t, "mul", d, dGo)

			var ws refitScratch
			var tn, tnGo tern
			k := max(1, n*r/5)
			signsOf(&tn, f, k, &ws).stats(f, &ws)
			withGo(func() { signsOf(&tnGo, f, k, &ws).stats(f, &ws) })
			sameTern(t, "signsOf", &tn, &tnGo)
			sameBits(t, "T^T F", tn.ft, tnGo.ft)
			sameBits(t, "T^T T", tn.tt, tnGo.tt)

			// negate keeps the bitsets those of the kept elements.
			tn.negate()
			var u tern
			u.copyFrom(&tn)
			u.setBits()
			if !slices.Equal(tn.bits, u.bits) {
				t.Fatalf("negate: bitsets %x, the kept elements give %x", tn.bits, u.bits)
			}

			// Zeros of both signs among the values: never kept.
			for i := 0; i < len(f.d); i += 3 {
				f.d[i] = math.Copysign(0, f.d[i])
			}
			keys := append([]uint32(nil), ws.rankKeys(f)...)
			withGo(func() {
				for i, want := range ws.rankKeys(f) {
					if keys[i] != want {
						t.Fatalf("rank key %d of %v: %#x, the Go loop gives %#x", i, f.d[i], keys[i], want)
					}
				}
			})
			thr := keys[rng.IntN(len(keys))]
			keptSigns(&tn, f, thr, &ws)
			withGo(func() { keptSigns(&tnGo, f, thr, &ws) })
			sameTern(t, "keptSigns", &tn, &tnGo)
		}
	}
}

func sameTern(t *testing.T, what string, got, want *tern) {
	t.Helper()
	if !slices.Equal(got.start, want.start) || !slices.Equal(got.el, want.el) {
		t.Fatalf("%s: kept elements %v by rows %v, the Go loops give %v by rows %v",
			what, got.el, got.start, want.el, want.start)
	}
	if !slices.Equal(got.bits, want.bits) {
		t.Fatalf("%s: bitsets %x, the Go loops give %x", what, got.bits, want.bits)
	}
}

// TestRefitGoldenGo runs TestRefitGolden's check on the Go loops alone,
// as on a machine without AVX2.
func TestRefitGoldenGo(t *testing.T) {
	if !haveAVX2 {
		t.Skip("TestRefitGolden runs the Go loops here")
	}
	withGo(func() { TestRefitGolden(t) })
}

// TestFloat64s: the AVX2 conversion and the Go loop, on lengths with and
// without a remainder, NaN and infinities included.
func TestFloat64s(t *testing.T) {
	for _, n := range []int{0, 1, 4, 7, 64, 67} {
		xs := make([]float32, n)
		for i := range xs {
			xs[i] = []float32{float32(i) - 3.25, float32(math.NaN()), float32(math.Inf(-1)), 1e-40}[i%4]
		}
		got := float64s(nil, xs)
		for i, x := range xs {
			if math.Float64bits(got[i]) != math.Float64bits(float64(x)) {
				t.Fatalf("length %d: element %d is %v, want %v", n, i, got[i], float64(x))
			}
		}
	}
}

// TestTranspose64: whole blocks of eight rows and the rows left, in AVX2
// (columns by four and the columns left) and in Go.
func TestTranspose64(t *testing.T) {
	testTranspose64(t)
	withGo(func() { testTranspose64(t) })
}

func testTranspose64(t *testing.T) {
	for _, m := range []int{1, 5, 8, 13, 16, 67} {
		for _, n := range []int{1, 3, 4, 7, 64} {
			xs := make([]float32, m*n)
			for i := range xs {
				xs[i] = float32(i) - 0.5
			}
			got := transpose64(nil, xs, m, n)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					if got[j*m+i] != float64(xs[i*n+j]) {
						t.Fatalf("%d x %d: element (%d, %d) is %v, want %v", m, n, j, i, got[j*m+i], xs[i*n+j])
					}
				}
			}
		}
	}
}
