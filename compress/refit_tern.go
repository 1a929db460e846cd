package compress

import (
	"math"
	"math/bits"
)

// The refit works on both factors in one layout: X = B (out x r) and
// Y = A^T (in x r), so that P = X Y^T and fitting either factor against
// the other is the same computation. Ternary factors are kept sparse, by
// rows, and every product with one skips its zeros.

// factor is a row-major n x r matrix.
type factor struct {
	n, r int
	d    []float64
}

func (f factor) row(i int) []float64 { return f.d[i*f.r : (i+1)*f.r] }

// tern is a ternary factor s T, T in {-1, 0, 1}, n x r, stored by rows:
// row i keeps the elements el[start[i]:start[i+1]], by increasing column,
// each its column j and its sign as j<<1 | (1 if negative). ft = T^T F and tt = T^T T (r x r, row-major) are its
// statistics against the factor F it stands for (stats), without s: every
// product error the refit needs is an inner product of such matrices.
// A tern's buffers are reused from module to module.
type tern struct {
	n, r  int
	start []int32
	el    []uint32
	// bits are T's columns as bitsets of its rows, by blocks of 64 rows:
	// block b is 2r words, bits[2 b r + j] has bit i set if row 64 b + i
	// keeps column j, bits[(2 b + 1) r + j] if it is negative there.
	bits   []uint64
	s      float64
	ft, tt []float64
}

// copyFrom makes t a copy of u.
func (t *tern) copyFrom(u *tern) {
	t.n, t.r, t.s = u.n, u.r, u.s
	t.start = append(t.start[:0], u.start...)
	t.el = append(t.el[:0], u.el...)
	t.bits = append(t.bits[:0], u.bits...)
	t.ft = append(t.ft[:0], u.ft...)
	t.tt = append(t.tt[:0], u.tt...)
}

// row returns the kept elements of row i.
func (t *tern) row(i int) []uint32 { return t.el[t.start[i]:t.start[i+1]] }

// kept is how many elements t keeps.
func (t *tern) kept() int { return len(t.el) }

// signs maps the sign bit of an element to its value.
var signs = [2]float64{1, -1}

// positions returns T's kept elements as position<<1 | sign bit, by
// increasing position in the layout of B (n x r, row-major) or, if
// transposed, of A (r x n), in dst if it is long enough.
func (t *tern) positions(dst []uint32, transposed bool) []uint32 {
	dst = grow(dst, t.kept())
	if !transposed {
		for i := 0; i < t.n; i++ {
			for q, e := range t.row(i) {
				dst[int(t.start[i])+q] = uint32(i*t.r+int(e>>1))<<1 | e&1
			}
		}
		return dst
	}
	next := make([]int, t.r+1) // where each column's next element goes
	for _, e := range t.el {
		next[e>>1+1]++
	}
	for j := 1; j <= t.r; j++ {
		next[j] += next[j-1]
	}
	for i := 0; i < t.n; i++ {
		for _, e := range t.row(i) {
			j := int(e >> 1)
			dst[next[j]] = uint32(j*t.n+i)<<1 | e&1
			next[j]++
		}
	}
	return dst
}

// negate flips every sign of t, and its statistics with them.
func (t *tern) negate() {
	for q := range t.el {
		t.el[q] ^= 1
	}
	for i := range t.ft {
		t.ft[i] = -t.ft[i]
	}
	for b := 0; b+2*t.r <= len(t.bits); b += 2 * t.r { // negative rows of each block
		kept, neg := t.bits[b:b+t.r], t.bits[b+t.r:b+2*t.r]
		for j, k := range kept {
			neg[j] ^= k
		}
	}
}

// stats sets t.ft = T^T F and t.tt = T^T T. Each element of T^T F is
// summed over the rows in order.
func (t *tern) stats(f factor, ws *refitScratch) {
	r := t.r
	t.ft, t.tt = grow(t.ft, r*r), grow(t.tt, r*r)
	clear(t.ft)
	words := (t.n + 63) / 64
	if !useAVX2 || r < 4 || t.n == 0 {
		for i := 0; i < t.n; i++ {
			addSignedCols(t.ft, t.row(i), f.row(i), 0)
		}
	} else {
		// Column by column of T, a few columns of F at a time, the sums
		// in registers across kept rows.
		r4, c := r&^3, 0
		for ; c+32 <= r4; c += 32 {
			statsCols8AVX2(&t.ft[c], &f.d[c], &t.bits[0], r, words)
		}
		for ; c+16 <= r4; c += 16 {
			statsCols4AVX2(&t.ft[c], &f.d[c], &t.bits[0], r, words)
		}
		for ; c < r4; c += 4 {
			statsCols1AVX2(&t.ft[c], &f.d[c], &t.bits[0], r, words)
		}
		if r4 != r {
			for i := 0; i < t.n; i++ {
				addSignedCols(t.ft, t.row(i), f.row(i), r4)
			}
		}
	}
	// T^T T: the upper triangle counted from the bitsets, then mirrored.
	ws.cnt = grow(ws.cnt, r*r)
	cnt := ws.cnt
	if useAVX2 && r%4 == 0 && r > 0 && t.n > 0 {
		overlapAVX2(&cnt[0], &t.bits[0], r, words)
	} else {
		signedOverlaps(cnt, t.bits, r, words)
	}
	for j := 0; j < r; j++ {
		for l := j; l < r; l++ {
			v := float64(cnt[j*r+l])
			t.tt[j*r+l], t.tt[l*r+j] = v, v
		}
	}
}

// signedOverlaps sets cnt[j r + l], for l >= j, to the sum over rows of
// t_j t_l for the ternary columns j and l given by set (tern.bits, r
// columns, words blocks).
func signedOverlaps(cnt []int64, set []uint64, r, words int) {
	clear(cnt)
	for w := 0; w < words; w++ {
		kept, neg := set[2*w*r:][:r], set[(2*w+1)*r:][:r]
		for j, kj := range kept {
			c, nj := cnt[j*r:][:r], neg[j]
			for l := j; l < r; l++ {
				b := kj & kept[l]
				c[l] += int64(bits.OnesCount64(b) - 2*bits.OnesCount64(b&(nj^neg[l])))
			}
		}
	}
}

// errorTerms returns <T, X C> and <T, T G> for the statistics C^T and G
// of the other factor: with X̂ = s T the product error is
// ||P||^2 - 2 s num + s^2 den.
func (t *tern) errorTerms(ct, g []float64) (num, den float64) {
	return dot(t.ft, ct), dot(t.tt, g)
}

// sideStats sets C^T = s T^T F and G = s^2 T^T T, what fitting the other
// factor against ŷ = s T needs.
func sideStats(ct, g []float64, yh *tern) {
	for i, v := range yh.ft {
		ct[i] = yh.s * v
	}
	for i, v := range yh.tt {
		g[i] = v * (yh.s * yh.s)
	}
}

// ternL2 sets t to the k largest magnitudes of f with the L2-optimal
// scale, the mean magnitude of the kept elements.
func ternL2(t *tern, f factor, k int, ws *refitScratch) *tern {
	signsOf(t, f, k, ws)
	var sum float64
	for i := 0; i < t.n; i++ {
		for _, e := range t.row(i) {
			sum += math.Abs(f.d[i*f.r+int(e>>1)])
		}
	}
	if t.kept() > 0 {
		t.s = sum / float64(t.kept())
	}
	return t
}

// keptSigns sets t to sign(f) where the plain codec keeps f:
// absKey >= max(thr, 1), that is rankKey > max(thr, 1) + rankZeroGap - 1.
// The rank keys are made row by row, as fill goes.
func keptSigns(t *tern, f factor, thr uint32, ws *refitScratch) *tern {
	return t.fill(f, nil, topCut{thr: max(thr, 1) + rankZeroGap - 1}, ws)
}

// signsOf sets t to sign(f) on its k largest magnitudes (topK's choice),
// with scale 0.
func signsOf(t *tern, f factor, k int, ws *refitScratch) *tern {
	keys := ws.rankKeys(f)
	return t.fill(f, keys, ws.top.selectTop(keys, k), ws)
}

// rankKeys returns the rank keys of f's elements, in ws's buffer.
func (ws *refitScratch) rankKeys(f factor) []uint32 {
	keys := grow(ws.top.keys, len(f.d))
	ws.top.keys = keys
	i := 0
	if useAVX2 && len(f.d) >= 4 {
		i = len(f.d) &^ 3
		rankKeysAVX2(&keys[0], &f.d[0], i/4)
	}
	for ; i < len(f.d); i++ {
		keys[i] = rankKey(f.d[i])
	}
	return keys
}

// fill sets t to sign(f) where the rank keys of f (nil: made from f, a
// row at a time) are above c.thr, and at the first c.ties equal to it.
func (t *tern) fill(f factor, keys []uint32, c topCut, ws *refitScratch) *tern {
	n, r := f.n, f.r
	t.n, t.r, t.s = n, r, 0
	t.start = grow(t.start, n+1)
	t.start[0] = 0
	thr, ties := c.thr, c.ties
	if ties == c.equal { // no tie to break: keep every key equal to thr
		thr, ties = thr-1, 0
	}
	words := (n + 63) / 64
	t.bits = grow(t.bits, 2*r*words)
	if useAVX2 && ties == 0 && r%4 == 0 && r > 0 && n > 0 {
		// The same rank keys from f, the same comparisons (keys is not
		// needed), and the bitsets a block of 64 rows at a time.
		el := grow(t.el[:cap(t.el)], n*r)
		clear(t.bits)
		k := 0
		for w := range words {
			i := w * 64
			k = fillAVX2(&el[0], &t.start[i], &f.d[i*r], min(64, n-i), r, thr, k, &t.bits[2*w*r])
		}
		t.el = el[:k]
		return t
	}
	el := t.el[:cap(t.el)]
	k := 0
	for i := 0; i < n; i++ {
		if len(el)-k < r {
			el = append(el[:k], make([]uint32, max(r, k))...)
		}
		row := f.row(i)
		var rk []uint32
		if keys != nil {
			rk = keys[i*r : i*r+r]
		} else {
			ws.rowKeys = grow(ws.rowKeys, r)
			rk = ws.rowKeys
			for j, v := range row {
				rk[j] = rankKey(v)
			}
		}
		// Without branches on the data: every column is written, and only
		// kept ones are moved past.
		if ties == 0 {
			out, q := el[k:k+len(rk)], 0
			for j, v := range row[:len(rk)] {
				out[q] = uint32(j)<<1 | uint32(math.Float64bits(v)>>63)
				q += int(uint64(int64(thr)-int64(rk[j])) >> 63) // rk[j] > thr
			}
			k += q
		} else {
			for j, v := range row[:len(rk)] {
				el[k] = uint32(j)<<1 | uint32(math.Float64bits(v)>>63)
				inc := 0
				if rk[j] > thr {
					inc = 1
				}
				if rk[j] == thr && ties > 0 {
					ties--
					inc = 1
				}
				k += inc
			}
		}
		t.start[i+1] = int32(k)
	}
	t.el = el[:k]
	t.setBits()
	return t
}

// setBits sets t's bitsets from its kept elements.
func (t *tern) setBits() {
	clear(t.bits)
	for i := 0; i < t.n; i++ {
		blk, bit := t.bits[2*(i>>6)*t.r:][:2*t.r], uint64(1)<<(i&63)
		for _, e := range t.row(i) {
			j := int(e >> 1)
			blk[j] |= bit
			blk[t.r+j] |= bit & -uint64(e&1)
		}
	}
}

func to64(xs []float32) []float64 { return float64s(nil, xs) }

// float64s returns xs as float64, in dst if it is long enough.
func float64s(dst []float64, xs []float32) []float64 {
	dst = grow(dst, len(xs))
	i := 0
	if useAVX2 && len(xs) >= 4 {
		i = len(xs) &^ 3
		float64sAVX2(&dst[0], &xs[0], i/4)
	}
	for ; i < len(xs); i++ {
		dst[i] = float64(xs[i])
	}
	return dst
}

// transpose64 returns the m x n row-major xs transposed, as float64, in
// dst if it is long enough. Eight rows of xs at a time, so that every
// row of dst gets a whole cache line (eight float64) at once while xs is
// read in eight sequential streams.
func transpose64(dst []float64, xs []float32, m, n int) []float64 {
	dst = grow(dst, len(xs))
	i := 0
	for ; i+8 <= m && useAVX2 && n >= 4; i += 8 { // 4 x 4 blocks of each
		transpose8AVX2(&dst[i], &xs[i*n], m, n, n/4)
		for j := n &^ 3; j < n; j++ {
			for k := i; k < i+8; k++ {
				dst[j*m+k] = float64(xs[k*n+j])
			}
		}
	}
	for ; i+8 <= m; i += 8 {
		x0, x1, x2, x3 := xs[i*n:][:n], xs[(i+1)*n:][:n], xs[(i+2)*n:][:n], xs[(i+3)*n:][:n]
		x4, x5, x6, x7 := xs[(i+4)*n:][:n], xs[(i+5)*n:][:n], xs[(i+6)*n:][:n], xs[(i+7)*n:][:n]
		for j := range x0 {
			d := dst[j*m+i:][:8]
			d[0], d[1], d[2], d[3] = float64(x0[j]), float64(x1[j]), float64(x2[j]), float64(x3[j])
			d[4], d[5], d[6], d[7] = float64(x4[j]), float64(x5[j]), float64(x6[j]), float64(x7[j])
		}
	}
	for ; i < m; i++ {
		for j, v := range xs[i*n : i*n+n] {
			dst[j*m+i] = float64(v)
		}
	}
	return dst
}
