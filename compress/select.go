package compress

import (
	"fmt"
	"math"
)

// absKey maps a float32 to an unsigned key that orders by magnitude:
// the IEEE bits with the sign cleared. Keys >= infKey are Inf or NaN.
func absKey(x float32) uint32 { return math.Float32bits(x) &^ (1 << 31) }

const infKey = 0x7f800000

// hist counts magnitude keys by one 16-bit half.
type hist [1 << 16]int64

// moments holds what one pass over the dense task vector learns.
type moments struct {
	n    int64
	sum  float64
	hist hist // counts of absKey >> 16
}

// scan fills m from the tensors taus on w goroutines. Each tensor's sum
// is taken in four partial sums and the tensors' sums are added in order,
// so the result does not depend on w. It fails on NaN or Inf.
func (m *moments) scan(taus [][]float32, w int) error {
	hs := make([]*hist, w) // one per worker: counts add up in any order
	if w == 1 {
		hs[0] = &m.hist
	}
	sums := make([]float64, len(taus))
	err := forEach(len(taus), w, func(g, i int) error {
		if hs[g] == nil {
			hs[g] = new(hist)
		}
		var err error
		sums[i], err = tensorMoments(taus[i], hs[g])
		return err
	})
	if err != nil {
		return err
	}
	for _, h := range hs {
		if h == nil || h == &m.hist {
			continue
		}
		for b, c := range h {
			m.hist[b] += c
		}
	}
	for i, xs := range taus {
		m.n += int64(len(xs))
		m.sum += sums[i]
	}
	return nil
}

// tensorMoments adds the high halves of xs's magnitude keys to h and
// returns the plain sum of xs. It fails on NaN or Inf, which land in the
// top bins of h (empty before: the caller stops at the first failure).
func tensorMoments(xs []float32, h *hist) (float64, error) {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(xs); i += 4 {
		a, b, c, d := xs[i], xs[i+1], xs[i+2], xs[i+3]
		ka, kb, kc, kd := absKey(a), absKey(b), absKey(c), absKey(d)
		h[ka>>16]++
		h[kb>>16]++
		h[kc>>16]++
		h[kd>>16]++
		s0 += float64(a)
		s1 += float64(b)
		s2 += float64(c)
		s3 += float64(d)
	}
	for ; i < len(xs); i++ {
		h[absKey(xs[i])>>16]++
		s0 += float64(xs[i])
	}
	for b := infKey >> 16; b < len(h); b++ {
		if h[b] != 0 {
			return 0, ErrNonFinite
		}
	}
	return (s0 + s1) + (s2 + s3), nil
}

// threshold selects the magnitude key of the r-th smallest |x| (1-based)
// over all tensors, in two histogram passes (O(n), no sort), on w
// goroutines. With ssd set it also returns the sum of squared deviations
// from the mean, for the standard deviation, added tensor by tensor in
// order. r == 0 selects key 0 (keep everything).
func threshold(ts [][]float32, m *moments, r int64, w int, ssd bool) (uint32, float64) {
	mean := 0.0
	if m.n > 0 {
		mean = m.sum / float64(m.n)
	}
	ssds := make([]float64, len(ts))
	if r <= 0 {
		if ssd {
			forEach(len(ts), w, func(_, i int) error {
				ssds[i] = sumSqDev(ts[i], mean)
				return nil
			})
		}
		return 0, sumInOrder(ssds)
	}
	// Find the high half.
	var cum int64
	hi := 0
	for ; hi < len(m.hist); hi++ {
		if cum+m.hist[hi] >= r {
			break
		}
		cum += m.hist[hi]
	}
	rank := r - cum // rank within the bin, 1-based
	h := uint32(hi)
	lows := make([]*hist, w)
	forEach(len(ts), w, func(g, i int) error {
		if lows[g] == nil {
			lows[g] = new(hist)
		}
		if ssd {
			ssds[i] = lowHistSqDev(ts[i], h, lows[g], mean)
		} else {
			lowHist(ts[i], h, lows[g])
		}
		return nil
	})
	var low hist
	for _, l := range lows {
		if l == nil {
			continue
		}
		for b, c := range l {
			low[b] += c
		}
	}
	for lo := 0; lo < len(low); lo++ {
		if low[lo] >= rank {
			return h<<16 | uint32(lo), sumInOrder(ssds)
		}
		rank -= low[lo]
	}
	panic(fmt.Sprintf("compress: selection rank %d not found", r)) // unreachable: counts agree
}

// sumInOrder adds xs from the first, as a loop over the tensors would.
func sumInOrder(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}

func sumSqDev(xs []float32, mean float64) float64 {
	var s0, s1 float64
	i := 0
	for ; i+2 <= len(xs); i += 2 {
		d0 := float64(xs[i]) - mean
		d1 := float64(xs[i+1]) - mean
		s0 += float64(d0 * d0)
		s1 += float64(d1 * d1)
	}
	for ; i < len(xs); i++ {
		d := float64(xs[i]) - mean
		s0 += float64(d * d)
	}
	return s0 + s1
}

// lowHist counts the low halves of the magnitude keys of xs whose high
// half is hi.
func lowHist(xs []float32, hi uint32, low *hist) {
	for _, x := range xs {
		if k := absKey(x); k>>16 == hi {
			low[k&0xffff]++
		}
	}
}

func lowHistSqDev(xs []float32, hi uint32, low *hist, mean float64) float64 {
	var s0, s1 float64
	i := 0
	for ; i+2 <= len(xs); i += 2 {
		a, b := xs[i], xs[i+1]
		ka, kb := absKey(a), absKey(b)
		if ka>>16 == hi {
			low[ka&0xffff]++
		}
		if kb>>16 == hi {
			low[kb&0xffff]++
		}
		d0 := float64(a) - mean
		d1 := float64(b) - mean
		s0 += float64(d0 * d0)
		s1 += float64(d1 * d1)
	}
	for ; i < len(xs); i++ {
		k := absKey(xs[i])
		if k>>16 == hi {
			low[k&0xffff]++
		}
		d := float64(xs[i]) - mean
		s0 += float64(d * d)
	}
	return s0 + s1
}
