package compress

import (
	"fmt"
	"math"
)

// absKey maps a float32 to an unsigned key that orders by magnitude:
// the IEEE bits with the sign cleared. Keys >= infKey are Inf or NaN.
func absKey(x float32) uint32 { return math.Float32bits(x) &^ (1 << 31) }

const infKey = 0x7f800000

// moments holds what one pass over the dense task vector learns.
type moments struct {
	n    int64
	sum  float64
	hist [1 << 16]int64 // counts of absKey >> 16
}

// add accumulates one tensor into m: the high-half histogram of magnitudes
// and the plain sum. It fails on NaN or Inf.
func (m *moments) add(xs []float32) error {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(xs); i += 4 {
		a, b, c, d := xs[i], xs[i+1], xs[i+2], xs[i+3]
		ka, kb, kc, kd := absKey(a), absKey(b), absKey(c), absKey(d)
		m.hist[ka>>16]++
		m.hist[kb>>16]++
		m.hist[kc>>16]++
		m.hist[kd>>16]++
		s0 += float64(a)
		s1 += float64(b)
		s2 += float64(c)
		s3 += float64(d)
	}
	for ; i < len(xs); i++ {
		m.hist[absKey(xs[i])>>16]++
		s0 += float64(xs[i])
	}
	// Inf and NaN land in the top bins of the histogram.
	for h := infKey >> 16; h < len(m.hist); h++ {
		if m.hist[h] != 0 {
			return ErrNonFinite
		}
	}
	m.n += int64(len(xs))
	m.sum += (s0 + s1) + (s2 + s3)
	return nil
}

// threshold selects the magnitude key of the r-th smallest |x| (1-based)
// over all tensors, in two histogram passes (O(n), no sort). It also returns
// the sum of squared deviations from mean, for the standard deviation.
// r == 0 selects key 0 (keep everything).
func threshold(ts [][]float32, m *moments, r int64) (key uint32, ssd float64) {
	mean := 0.0
	if m.n > 0 {
		mean = m.sum / float64(m.n)
	}
	if r <= 0 {
		for _, xs := range ts {
			ssd += sumSqDev(xs, mean)
		}
		return 0, ssd
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
	var low [1 << 16]int64
	h := uint32(hi)
	for _, xs := range ts {
		ssd += lowHistSqDev(xs, h, &low, mean)
	}
	for lo := 0; lo < len(low); lo++ {
		if low[lo] >= rank {
			return h<<16 | uint32(lo), ssd
		}
		rank -= low[lo]
	}
	panic(fmt.Sprintf("compress: selection rank %d not found", r)) // unreachable: counts agree
}

func sumSqDev(xs []float32, mean float64) float64 {
	var s0, s1 float64
	i := 0
	for ; i+2 <= len(xs); i += 2 {
		d0 := float64(xs[i]) - mean
		d1 := float64(xs[i+1]) - mean
		s0 += d0 * d0
		s1 += d1 * d1
	}
	for ; i < len(xs); i++ {
		d := float64(xs[i]) - mean
		s0 += d * d
	}
	return s0 + s1
}

func lowHistSqDev(xs []float32, hi uint32, low *[1 << 16]int64, mean float64) float64 {
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
		s0 += d0 * d0
		s1 += d1 * d1
	}
	for ; i < len(xs); i++ {
		k := absKey(xs[i])
		if k>>16 == hi {
			low[k&0xffff]++
		}
		d := float64(xs[i]) - mean
		s0 += d * d
	}
	return s0 + s1
}
