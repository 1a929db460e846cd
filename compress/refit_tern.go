package compress

import (
	"math"
	"slices"
)

// The refit works on both factors in one layout: X = B (out x r) and
// Y = A^T (in x r), so that P = X Y^T and fitting either factor against
// the other is the same computation. Ternary factors are kept sparse, by
// columns, and every product with one skips its zeros.

// factor is a row-major n x r matrix.
type factor struct {
	n, r int
	d    []float64
}

func (f factor) row(i int) []float64 { return f.d[i*f.r : (i+1)*f.r] }

// tern is a ternary factor s T, T in {-1, 0, 1}, n x r, stored by
// columns: column j keeps rows idx[start[j]:start[j+1]], increasing, with
// signs sign[...]. ft = T^T F and tt = T^T T (r x r, row-major) are its
// statistics against the factor F it stands for (stats), without s: every
// product error the refit needs is an inner product of such matrices.
// A tern's buffers are reused from module to module.
type tern struct {
	n, r   int
	start  []int32
	idx    []int32
	sign   []float64
	s      float64
	ft, tt []float64
}

// reset empties t for an n x r factor.
func (t *tern) reset(n, r int) {
	t.n, t.r, t.s = n, r, 0
	t.start = grow(t.start, r+1)
	t.start[0] = 0
	t.idx, t.sign = t.idx[:0], t.sign[:0]
}

// copyFrom makes t a copy of u.
func (t *tern) copyFrom(u *tern) {
	t.n, t.r, t.s = u.n, u.r, u.s
	t.start = append(t.start[:0], u.start...)
	t.idx = append(t.idx[:0], u.idx...)
	t.sign = append(t.sign[:0], u.sign...)
	t.ft = append(t.ft[:0], u.ft...)
	t.tt = append(t.tt[:0], u.tt...)
}

// col returns the kept rows and signs of column j.
func (t *tern) col(j int) ([]int32, []float64) {
	a, b := t.start[j], t.start[j+1]
	return t.idx[a:b], t.sign[a:b]
}

// kept is how many elements t keeps.
func (t *tern) kept() int { return len(t.idx) }

// dense writes T into dst as a row-major n x r matrix, or r x n if
// transposed, and returns it.
func (t *tern) dense(dst []float32, transposed bool) []float32 {
	dst = grow(dst, t.n*t.r)
	clear(dst)
	for j := 0; j < t.r; j++ {
		rows, sign := t.col(j)
		for q, i := range rows {
			if transposed {
				dst[j*t.n+int(i)] = float32(sign[q])
			} else {
				dst[int(i)*t.r+j] = float32(sign[q])
			}
		}
	}
	return dst
}

// negate flips every sign of t, and its statistics with them.
func (t *tern) negate() {
	for q := range t.sign {
		t.sign[q] = -t.sign[q]
	}
	for i := range t.ft {
		t.ft[i] = -t.ft[i]
	}
}

// stats sets t.ft = T^T F and t.tt = T^T T.
func (t *tern) stats(f factor, ws *refitScratch) {
	r := t.r
	t.ft, t.tt = grow(t.ft, r*r), grow(t.tt, r*r)
	clear(t.ft)
	for j := 0; j < r; j++ {
		rows, sign := t.col(j)
		addRows(t.ft[j*r:j*r+r], f, rows, sign)
	}
	// T^T T from bitsets of each column's kept rows and negative signs.
	words := (t.n + 63) / 64
	ws.bits = grow(ws.bits, 2*r*words)
	clear(ws.bits)
	kept, neg := ws.bits[:r*words], ws.bits[r*words:]
	for j := 0; j < r; j++ {
		rows, sign := t.col(j)
		kj, nj := kept[j*words:(j+1)*words], neg[j*words:(j+1)*words]
		for q, i := range rows {
			kj[i>>6] |= 1 << (i & 63)
			if sign[q] < 0 {
				nj[i>>6] |= 1 << (i & 63)
			}
		}
	}
	for j := 0; j < r; j++ {
		for l := j; l < r; l++ {
			v := float64(signedOverlap(kept[j*words:(j+1)*words], kept[l*words:(l+1)*words],
				neg[j*words:(j+1)*words], neg[l*words:(l+1)*words]))
			t.tt[j*r+l], t.tt[l*r+j] = v, v
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
	for j := 0; j < t.r; j++ {
		rows, _ := t.col(j)
		for _, i := range rows {
			sum += math.Abs(f.d[int(i)*f.r+j])
		}
	}
	if t.kept() > 0 {
		t.s = sum / float64(t.kept())
	}
	return t
}

// keptSigns sets t to sign(f) where the plain codec keeps f:
// absKey >= max(thr, 1), that is rankKey > max(thr, 1) + rankZeroGap - 1.
func keptSigns(t *tern, f factor, thr uint32, ws *refitScratch) *tern {
	ws.top.keys = colKeys(ws.top.keys, f)
	return fromKeys(t, f, ws.top.keys, max(thr, 1)+rankZeroGap-1, -1)
}

// signsOf sets t to sign(f) on its k largest magnitudes (topK's choice:
// among equal magnitudes the earlier in row-major order), with scale 0.
func signsOf(t *tern, f factor, k int, ws *refitScratch) *tern {
	keys := colKeys(ws.top.keys, f)
	ws.top.keys = keys
	c := ws.top.selectTop(keys, k)
	if c.ties == c.equal {
		return fromKeys(t, f, keys, c.thr-1, c.kept)
	}
	// Raise the kept ones of the keys equal to thr above it.
	at := ws.ties[:0]
	for p, b := range keys {
		if b == c.thr {
			at = append(at, p)
		}
	}
	ws.ties = at
	rowMajor := func(p int) int { return p%f.n*f.r + p/f.n }
	slices.SortFunc(at, func(p, q int) int { return rowMajor(p) - rowMajor(q) })
	for _, p := range at[:c.ties] {
		keys[p] = c.thr + 1
	}
	return fromKeys(t, f, keys, c.thr, c.kept)
}

// colKeys returns the rank keys of f column by column (keys[j*n+i] is
// rankKey(F[i][j])), in dst if it is long enough. It goes through f in
// tiles of a few rows, so that reads and writes both stay in cache.
func colKeys(dst []uint32, f factor) []uint32 {
	n, r := f.n, f.r
	dst = grow(dst, n*r)
	for i0 := 0; i0 < n; i0 += transposeTile {
		i1 := min(i0+transposeTile, n)
		for j := 0; j < r; j++ {
			col := dst[j*n+i0 : j*n+i1]
			for q := range col {
				col[q] = rankKey(f.d[(i0+q)*r+j])
			}
		}
	}
	return dst
}

// fromKeys sets t to sign(f) where keys (column by column) exceed thr;
// total is how many do, or -1 if unknown.
func fromKeys(t *tern, f factor, keys []uint32, thr uint32, total int) *tern {
	n, r := f.n, f.r
	t.reset(n, r)
	if total < 0 {
		total = 0
		for _, b := range keys {
			if b > thr {
				total++
			}
		}
	}
	// Without branches on the data: every row is written, and only kept
	// ones are moved past.
	idx := grow(t.idx, total+1)
	c := 0
	for j := 0; j < r; j++ {
		for i, b := range keys[j*n : (j+1)*n] {
			idx[c] = int32(i)
			if b > thr {
				c++
			}
		}
		t.start[j+1] = int32(c)
	}
	t.idx = idx[:c]
	t.sign = grow(t.sign, c)
	for j := 0; j < r; j++ {
		rows, sign := t.col(j)
		for q, i := range rows {
			sign[q] = math.Copysign(1, f.d[int(i)*r+j])
		}
	}
	return t
}

// transposeTile is how many rows the transposing loops take at once.
const transposeTile = 16

func to64(xs []float32) []float64 { return float64s(nil, xs) }

// float64s returns xs as float64, in dst if it is long enough.
func float64s(dst []float64, xs []float32) []float64 {
	dst = grow(dst, len(xs))
	for i, v := range xs {
		dst[i] = float64(v)
	}
	return dst
}

// transpose64 returns the m x n row-major xs transposed, as float64, in
// dst if it is long enough. It goes through xs in tiles of a few columns.
func transpose64(dst []float64, xs []float32, m, n int) []float64 {
	dst = grow(dst, len(xs))
	for j0 := 0; j0 < n; j0 += transposeTile {
		j1 := min(j0+transposeTile, n)
		for i := 0; i < m; i++ {
			for j, v := range xs[i*n+j0 : i*n+j1] {
				dst[(j0+j)*m+i] = float64(v)
			}
		}
	}
	return dst
}
