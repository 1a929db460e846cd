package compress

import "math"

// topK marks in keep the k elements of xs with the largest magnitudes
// (compared in float32, the codec's precision); among equal magnitudes the
// earlier index wins, so exactly min(k, nonzeros) elements are marked.
// Zeros are never kept. It runs in O(n) (an MSB radix select over the
// float32 bits, no sort), whatever the input. scratch is reused.
func topK(xs []float64, k int, keep []bool, scratch []uint32) []uint32 {
	keep = keep[:len(xs)]
	clear(keep)
	if k <= 0 {
		return scratch
	}
	scratch = scratch[:0]
	for _, x := range xs {
		if x != 0 {
			scratch = append(scratch, magKey(x))
		}
	}
	if len(scratch) == 0 {
		return scratch
	}
	k = min(k, len(scratch))
	thr, above := kthLargest(scratch, k)
	ties := k - above // elements equal to thr to keep
	for i, x := range xs {
		if x == 0 {
			continue
		}
		switch b := magKey(x); {
		case b > thr:
			keep[i] = true
		case b == thr && ties > 0:
			keep[i] = true
			ties--
		}
	}
	return scratch
}

// magKey orders magnitudes: the bits of float32(|x|).
func magKey(x float64) uint32 { return math.Float32bits(float32(math.Abs(x))) }

// kthLargest returns the k-th largest key (1 <= k <= len(keys)) and how
// many keys are strictly larger. It reorders keys.
func kthLargest(keys []uint32, k int) (uint32, int) {
	var prefix uint32
	above := 0
	cand := keys
	for shift := 24; shift >= 0; shift -= 8 {
		var count [256]int
		for _, x := range cand {
			count[(x>>shift)&255]++
		}
		d := 255
		for ; d > 0 && count[d] < k; d-- {
			k -= count[d]
			above += count[d]
		}
		prefix |= uint32(d) << shift
		n := 0
		for _, x := range cand {
			if (x>>shift)&255 == uint32(d) {
				cand[n] = x
				n++
			}
		}
		cand = cand[:n]
	}
	return prefix, above
}
