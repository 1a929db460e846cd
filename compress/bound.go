package compress

import "math"

// BoundBits is the information bound of a ternary vector of n elements with
// kept nonzero elements: n*(H(d)+d) bits for d = kept/n, where H is the
// binary entropy (positions) and d*n the sign bits.
func BoundBits(n, kept int64) float64 {
	if n == 0 {
		return 0
	}
	d := float64(kept) / float64(n)
	return float64(n) * (binaryEntropy(d) + d)
}

func binaryEntropy(p float64) float64 {
	if p <= 0 || p >= 1 {
		return 0
	}
	return -p*math.Log2(p) - (1-p)*math.Log2(1-p)
}
