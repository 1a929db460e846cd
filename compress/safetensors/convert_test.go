package safetensors

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// refHalf returns the value of a finite IEEE half bit pattern, computed
// independently of f16ToF32.
func refHalf(h uint16) float64 {
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	var v float64
	if e == 0 {
		v = math.Ldexp(m, -24)
	} else {
		v = math.Ldexp(1024+m, e-25)
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return v
}

// halves holds the non-negative finite halves in increasing order, then
// 65536, which stands for Inf when rounding (it is the next value the
// exponent range would give).
var halves = func() []float64 {
	v := make([]float64, 0, 0x7c01)
	for h := uint16(0); h < 0x7c00; h++ {
		v = append(v, refHalf(h))
	}
	return append(v, 65536)
}()

// refF32ToF16 rounds a non-NaN float32 to the nearest half, ties to even, by
// searching the table of all halves.
func refF32ToF16(f float32) uint16 {
	x := float64(f)
	var sign uint16
	if math.Signbit(x) {
		sign, x = 0x8000, -x
	}
	if x >= 65536 {
		return sign | 0x7c00
	}
	i := sort.SearchFloat64s(halves, x) // halves[i] >= x
	if halves[i] == x {
		return sign | uint16(i)
	}
	lo, hi := i-1, i
	dlo, dhi := x-halves[lo], halves[hi]-x
	switch {
	case dlo < dhi:
		return sign | uint16(lo)
	case dhi < dlo:
		return sign | uint16(hi)
	case lo%2 == 0:
		return sign | uint16(lo)
	}
	return sign | uint16(hi)
}

// refF32ToBF16 rounds a non-NaN float32 to the nearest bfloat16, ties to even,
// by comparing the distances to the two candidates.
func refF32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	lo := uint16(b>>16) & 0x7fff
	x := math.Abs(float64(f))
	vlo := float64(math.Float32frombits(uint32(lo) << 16))
	if vlo == x {
		return sign | lo
	}
	hi := lo + 1
	vhi := float64(math.Float32frombits(uint32(hi) << 16))
	if hi == 0x7f80 {
		vhi = math.Ldexp(1, 128)
	}
	dlo, dhi := x-vlo, vhi-x
	switch {
	case dlo < dhi:
		return sign | lo
	case dhi < dlo:
		return sign | hi
	case lo%2 == 0:
		return sign | lo
	}
	return sign | hi
}

func TestBF16AllPatternsRoundTrip(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	f := make([]float32, len(src))
	BF16ToFloat32(f, src)
	back := make([]uint16, len(src))
	Float32ToBF16(back, f)
	for i, h := range src {
		if got := math.Float32bits(f[i]); got != uint32(h)<<16 {
			t.Fatalf("BF16ToFloat32(%#04x) = %#08x, want %#08x", h, got, uint32(h)<<16)
		}
		if back[i] != h {
			t.Fatalf("bf16 %#04x -> %g -> %#04x", h, f[i], back[i])
		}
	}
}

func TestF16AllPatternsRoundTrip(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	f := make([]float32, len(src))
	F16ToFloat32(f, src)
	back := make([]uint16, len(src))
	Float32ToF16(back, f)
	for i, h := range src {
		v := f[i]
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			if !math.IsNaN(float64(v)) || math.Signbit(float64(v)) != (h&0x8000 != 0) {
				t.Fatalf("F16ToFloat32(%#04x) = %g, want a NaN of the same sign", h, v)
			}
		} else if h&0x7c00 == 0x7c00 {
			if !math.IsInf(float64(v), 0) || math.Signbit(float64(v)) != (h&0x8000 != 0) {
				t.Fatalf("F16ToFloat32(%#04x) = %g, want Inf of the same sign", h, v)
			}
		} else if want := refHalf(h); float64(v) != want || math.Signbit(float64(v)) != math.Signbit(want) {
			t.Fatalf("F16ToFloat32(%#04x) = %g, want %g", h, v, want)
		}
		if back[i] != h {
			t.Fatalf("f16 %#04x -> %g -> %#04x", h, v, back[i])
		}
	}
}

// roundingInputs returns edge values, halfway cases and their float32
// neighbours for both formats, and random bit patterns.
func roundingInputs() []float32 {
	in := []float32{
		0, float32(math.Copysign(0, -1)), 1, -1, 0.1, -0.1, 1.0 / 3,
		float32(math.Inf(1)), float32(math.Inf(-1)),
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
		65504, 65505, 65519, 65519.998, 65520, 65521, 65536, 1e6, -65520,
		0x1p-14, 0x1p-15, 0x1p-24, 0x1p-25, 0x1p-26, 0x1.8p-24, 0x1.8p-25, 0x1.0000001p-25, 0x1.ffcp-15,
		0x1.fep127, 0x1.ff7fffp127, 0x1.ff8p127, 0x1p-126, 0x1p-133, 0x1p-149,
	}
	next := func(f float32, dir float64) float32 { return math.Nextafter32(f, float32(dir)) }
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		// Halfway between two adjacent halves, and its float32 neighbours.
		h := uint16(r.IntN(0x7c00))
		mid := float32((halves[h] + halves[h+1]) / 2)
		in = append(in, mid, -mid, next(mid, 0), next(mid, math.Inf(1)))
		// Halfway between two adjacent bfloat16s.
		b := uint32(r.IntN(0x7f80))<<16 | 0x8000
		fb := math.Float32frombits(b)
		in = append(in, fb, -fb, next(fb, 0), next(fb, math.Inf(1)))
		// Random bit patterns, and random values in the half range.
		in = append(in, math.Float32frombits(r.Uint32()), float32(r.NormFloat64()*1000), float32(r.NormFloat64()*1e-5))
	}
	return in
}

func TestFloat32ToHalfRounding(t *testing.T) {
	in := roundingInputs()
	f16 := make([]uint16, len(in))
	bf16 := make([]uint16, len(in))
	Float32ToF16(f16, in)
	Float32ToBF16(bf16, in)
	for i, f := range in {
		if math.IsNaN(float64(f)) {
			continue
		}
		if want := refF32ToF16(f); f16[i] != want {
			t.Errorf("Float32ToF16(%g = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), f16[i], want)
		}
		if want := refF32ToBF16(f); bf16[i] != want {
			t.Errorf("Float32ToBF16(%g = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), bf16[i], want)
		}
	}
}

func TestFloat32ToHalfNaN(t *testing.T) {
	nans := []uint32{0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7f801fff, 0x7fbfffff, 0x7fffffff, 0x7f80ffff, 0x7f810000}
	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		nans = append(nans, 0x7f800000|r.Uint32N(0x7fffff)+1|r.Uint32N(2)<<31)
	}
	for _, b := range nans {
		f := math.Float32frombits(b)
		neg := b>>31 == 1
		h := f32ToF16(f)
		if h&0x7c00 != 0x7c00 || h&0x3ff == 0 || (h&0x8000 != 0) != neg {
			t.Errorf("f32ToF16(NaN %#08x) = %#04x, want a NaN of the same sign", b, h)
		}
		h = f32ToBF16(f)
		if h&0x7f80 != 0x7f80 || h&0x7f == 0 || (h&0x8000 != 0) != neg {
			t.Errorf("f32ToBF16(NaN %#08x) = %#04x, want a NaN of the same sign", b, h)
		}
	}
}

func TestConvertShortDstPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Float32ToBF16 with a short dst did not panic")
		}
	}()
	Float32ToBF16(make([]uint16, 1), make([]float32, 2))
}
