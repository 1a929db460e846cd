package safetensors

import "math"

// Float32ToBF16 converts src to bfloat16 bit patterns in dst, rounding to
// nearest even. A NaN keeps its sign and the top of its payload, and never
// becomes an infinity. dst must hold len(src) values.
func Float32ToBF16(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, f := range src {
		dst[i] = f32ToBF16(f)
	}
}

// BF16ToFloat32 converts bfloat16 bit patterns in src to float32 in dst; the
// conversion is exact. dst must hold len(src) values.
func BF16ToFloat32(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = math.Float32frombits(uint32(h) << 16)
	}
}

// Float32ToF16 converts src to IEEE 754 half-precision bit patterns in dst,
// rounding to nearest even: values too large become ±Inf, tiny values become
// subnormals or ±0. A NaN keeps its sign and the top of its payload, and never
// becomes an infinity. dst must hold len(src) values.
func Float32ToF16(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, f := range src {
		dst[i] = f32ToF16(f)
	}
}

// F16ToFloat32 converts IEEE 754 half-precision bit patterns in src to float32
// in dst; the conversion is exact. dst must hold len(src) values.
func F16ToFloat32(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = f16ToF32(h)
	}
}

func f32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: truncate, but keep a payload bit so it stays a NaN
		h := uint16(b >> 16)
		if h&0x7f == 0 {
			h |= 0x40
		}
		return h
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	b &= 0x7fffffff
	switch {
	case b >= 0x38800000 && b < 0x477ff000: // normal half: [2^-14, 65520)
		b -= (127 - 15) << 23
		b += 0xfff + (b>>13)&1
		return sign | uint16(b>>13)
	case b < 0x33000000: // below 2^-25: rounds to zero
		return sign
	case b < 0x38800000: // subnormal half
		e := b >> 23
		m := b&0x7fffff | 0x800000
		s := 126 - e // 14..24
		r := m >> s
		rem := m & (1<<s - 1)
		half := uint32(1) << (s - 1)
		if rem > half || rem == half && r&1 == 1 {
			r++
		}
		return sign | uint16(r)
	case b > 0x7f800000: // NaN: truncate, but keep a payload bit so it stays a NaN
		m := uint16(b>>13) & 0x3ff
		if m == 0 {
			m = 0x200
		}
		return sign | 0x7c00 | m
	default: // Inf, or too large: rounds to Inf
		return sign | 0x7c00
	}
}

func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	e := uint32(h>>10) & 0x1f
	m := uint32(h & 0x3ff)
	switch e {
	case 0: // zero or subnormal: m * 2^-24, exact in float32
		f := float32(m) * (1.0 / (1 << 24))
		return math.Float32frombits(math.Float32bits(f) | sign)
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | m<<13)
	}
	return math.Float32frombits(sign | (e+127-15)<<23 | m<<13)
}
