package compress

import (
	"math"
	"math/bits"
)

// Payload layout of one tensor (see FORMAT.md):
//
//   sparse mode: for each kept element in order, Golomb(m) of the number of
//   dropped elements before it (since the previous kept one), then its sign
//   bit (1 = negative).
//
//   dense mode (more kept than dropped): for each dropped element in order,
//   Golomb(m) of the number of kept elements before it, then those kept
//   elements' sign bits; after the last dropped element the signs of the
//   remaining kept elements.
//
// Golomb(m) of g is g/m in unary (zeros closed by a one) and g%m in
// truncated binary. Kept means |tau| >= the threshold and tau != 0.

// Payload modes.
const (
	modeSparse = "sparse"
	modeDense  = "dense"
)

// golombParam returns the Golomb parameter that is optimal for a geometric
// source whose events (the coded elements) have probability p
// (Gallager and van Voorhis, 1975).
func golombParam(p float64) uint32 {
	if !(p > 0 && p < 0.5) { // also NaN, from an empty tensor's 0/0
		return 1
	}
	q := 1 - p
	m := math.Ceil(-math.Log1p(q) / math.Log(q))
	if m < 1 || m > 1<<30 {
		return 1 << 30
	}
	// The logs may round differently on another CPU (math's code is
	// assembly on some, and fused on others): settle m on the defining
	// inequality, the smallest m with q^m (1+q) <= 1, in arithmetic that
	// rounds the same everywhere, so every machine writes the same M.
	optimal := func(m uint32) bool {
		qm := powInt(q, m)
		return float64(qm*q)+qm <= 1
	}
	k := uint32(m)
	for range 4 {
		switch {
		case k > 1 && optimal(k-1):
			k--
		case !optimal(k) && k < 1<<30:
			k++
		default:
			return k
		}
	}
	return k
}

// powInt is x^n by squaring, every product rounded.
func powInt(x float64, n uint32) float64 {
	r := 1.0
	for ; n > 0; n >>= 1 {
		if n&1 == 1 {
			r *= x
		}
		x *= x
	}
	return r
}

// golomb holds a parameter's derived constants.
type golomb struct {
	m   uint32
	b   uint // bits of the long remainder codes: ceil(log2 m)
	u   uint32
	inv uint64 // 2^64/m rounded up, for div (m > 1)
}

func newGolomb(m uint32) golomb {
	b := uint(bits.Len32(m - 1))
	g := golomb{m: m, b: b, u: uint32(1)<<b - m}
	if m > 1 {
		g.inv = ^uint64(0)/uint64(m) + 1
	}
	return g
}

// div is v/m by a multiplication, exact for every 32-bit v (Lemire,
// Kaser and Kurz, "Faster remainder by direct computation", 2019).
func (g golomb) div(v uint32) uint32 {
	if g.m == 1 {
		return v
	}
	q, _ := bits.Mul64(g.inv, uint64(v))
	return uint32(q)
}

func (g golomb) encode(w *bitWriter, v uint32) {
	q := g.div(v)
	w.unary(uint64(q))
	if g.b == 0 {
		return
	}
	r := v - q*g.m
	if r < g.u {
		w.write(uint64(r), g.b-1)
		return
	}
	x := r + g.u
	w.write(uint64(x>>1), g.b-1)
	w.write(uint64(x&1), 1)
}

// encodeSigned writes v then one sign bit, as encode and a write of the
// bit do, in one write when the code is short (it nearly always is).
func (g golomb) encodeSigned(w *bitWriter, v, sign uint32) {
	q := g.div(v)
	if q+uint32(g.b) > 29 { // the code and the sign may not fit in 32 bits
		g.encode(w, v)
		w.write(uint64(sign), 1)
		return
	}
	bits := uint64(1) << q // q zeros closed by a one
	n := uint(q) + 1
	if g.b > 0 {
		r := v - q*g.m
		if r < g.u {
			bits |= uint64(r) << n
			n += g.b - 1
		} else {
			x := r + g.u
			bits |= (uint64(x>>1) | uint64(x&1)<<(g.b-1)) << n
			n += g.b
		}
	}
	w.write(bits|uint64(sign)<<n, n+1)
}

// decode reads one value; the caller refills after the unary part.
func (g golomb) decode(r *bitReader, limit uint64) (uint64, bool) {
	q, ok := r.unary(limit / uint64(g.m))
	if !ok {
		return 0, false
	}
	if g.b == 0 {
		return q, true
	}
	if r.n < 56 && !r.refill() && !r.more() {
		return 0, false
	}
	x := uint32(r.read(g.b - 1))
	if x >= g.u {
		x = (x<<1 | uint32(r.read(1))) - g.u
	}
	return q*uint64(g.m) + uint64(x), true
}

// decodeShort reads one value and the sign bit after it when the whole
// code is in the bit buffer (after a refill from the window) and its
// quotient is within limit/m, as decode would read them; otherwise it
// reads nothing and reports false.
func (g golomb) decodeShort(r *bitReader, limit uint64) (v, sign uint64, ok bool) {
	if r.n < 56 && !r.refill() {
		return 0, 0, false
	}
	q := uint(bits.TrailingZeros64(r.buf))
	if q+g.b+2 > r.n || uint64(q) > limit/uint64(g.m) {
		return 0, 0, false
	}
	buf := r.buf >> (q + 1)
	used := q + 1
	var x uint64
	if g.b > 0 {
		x = buf & (1<<(g.b-1) - 1)
		used += g.b - 1
		if x >= uint64(g.u) {
			x = (x<<1 | buf>>(g.b-1)&1) - uint64(g.u)
			used++
		}
	}
	sign = r.buf >> used & 1
	used++
	r.buf >>= used
	r.n -= used
	return uint64(q)*uint64(g.m) + x, sign, true
}

// tensorCode is the coded form of one tensor.
type tensorCode struct {
	Kept    int64  // nonzero kept elements
	Mode    string // modeSparse or modeDense
	M       uint32 // Golomb parameter
	Payload []byte
}

// scratch holds buffers reused across tensors.
type scratch struct {
	pos []uint32 // kept positions<<1 | sign bit
	out []byte
}

// encodeTensor codes the elements of xs with absKey >= thr, zeros never
// counted as kept. It also returns the sum of |x| over the reference's kept
// set (absKey >= thr, zeros included when thr is 0) and that set's size, for
// the auto scale. Sparse tensors take one branch-free pass over xs and one
// over the kept elements.
func encodeTensor(xs []float32, thr uint32, sc *scratch) (tc tensorCode, sum float64, cnt int64) {
	n := int64(len(xs))
	keep := max(thr, 1)
	pos := sc.kept(xs, keep)
	j := len(pos)
	cnt = int64(j)
	if thr == 0 {
		cnt = n
	}
	if int64(j)*2 <= n {
		tc, sum = encodeSparse(pos, n, xs, sc)
		return tc, sum, cnt
	}
	tc = tensorCode{Kept: int64(j), Mode: modeDense}
	w := bitWriter{out: sc.out[:0]}
	tc.M = golombParam(float64(n-tc.Kept) / float64(n))
	g := newGolomb(tc.M)
	start := 0 // first kept element of the current run
	for i, x := range xs {
		a := absKey(x)
		if a >= keep {
			sum += float64(math.Float32frombits(a))
			continue
		}
		g.encode(&w, uint32(i-start))
		writeSigns(&w, xs[start:i])
		start = i + 1
	}
	writeSigns(&w, xs[start:])
	tc.Payload = w.flush()
	sc.out = tc.Payload
	return tc, sum, cnt
}

// encodeSparse codes in sparse mode the kept elements of a tensor of n
// elements, given as position<<1 | sign bit in increasing order. With xs,
// the tensor's values, it also returns the sum of the kept magnitudes
// (kept elements alternating between two partial sums).
func encodeSparse(pos []uint32, n int64, xs []float32, sc *scratch) (tensorCode, float64) {
	tc := tensorCode{Kept: int64(len(pos)), Mode: modeSparse, M: golombParam(float64(len(pos)) / float64(n))}
	w := bitWriter{out: sc.out[:0]}
	g := newGolomb(tc.M)
	next := uint32(0) // first position after the previous kept element
	var s0, s1 float64
	for k, p := range pos {
		i := p >> 1
		g.encodeSigned(&w, i-next, p&1)
		next = i + 1
		if xs == nil {
			continue
		}
		a := float64(math.Float32frombits(math.Float32bits(xs[i]) &^ (1 << 31)))
		if k&1 == 0 {
			s0 += a
		} else {
			s1 += a
		}
	}
	tc.Payload = w.flush()
	sc.out = tc.Payload
	return tc, s0 + s1
}

// kept returns the elements of xs with absKey >= keep as position<<1 |
// sign bit, in order, in sc's buffer; one pass without branches.
func (sc *scratch) kept(xs []float32, keep uint32) []uint32 {
	if cap(sc.pos) < len(xs) {
		sc.pos = make([]uint32, len(xs))
	}
	pos := sc.pos[:len(xs)]
	j := 0
	for i, x := range xs {
		b := math.Float32bits(x)
		pos[j] = uint32(i)<<1 | b>>31
		if b&^(1<<31) >= keep {
			j++
		}
	}
	return pos[:j]
}

// keptSum is encodeTensor's sum and count without the code: the same
// additions in the same order, so the auto scale does not depend on
// whether a tensor was coded.
func keptSum(xs []float32, thr uint32, sc *scratch) (sum float64, cnt int64) {
	pos := sc.kept(xs, max(thr, 1))
	cnt = int64(len(pos))
	if thr == 0 {
		cnt = int64(len(xs))
	}
	mag := func(p uint32) float64 { return math.Abs(float64(xs[p>>1])) }
	if 2*len(pos) > len(xs) { // dense code: one sum
		for _, p := range pos {
			sum += mag(p)
		}
		return sum, cnt
	}
	var s0, s1 float64 // sparse code: kept elements alternate between two sums
	k := 0
	for ; k+2 <= len(pos); k += 2 {
		s0 += mag(pos[k])
		s1 += mag(pos[k+1])
	}
	if k < len(pos) {
		s0 += mag(pos[k])
	}
	return s0 + s1, cnt
}

func writeSigns(w *bitWriter, xs []float32) {
	for _, x := range xs {
		w.write(uint64(math.Float32bits(x)>>31), 1)
	}
}
