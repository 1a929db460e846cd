package compress

import "math"

// topScratch is memory that top-k selection reuses: rank keys, and the
// candidates of the threshold's bin.
type topScratch struct{ keys, cand []uint32 }

// topK marks in keep the k elements of xs with the largest magnitudes
// (compared in float32, the codec's precision); among equal magnitudes the
// earlier index wins, so exactly min(k, nonzeros) elements are marked.
// Zeros are never kept. It runs in O(n) (a histogram of the magnitudes,
// then a radix select among the few in the threshold's bin; no sort),
// whatever the input.
func topK(xs []float64, k int, keep []bool, sc *topScratch) {
	keep = keep[:len(xs)]
	clear(keep)
	keys := grow(sc.keys, len(xs))
	sc.keys = keys
	for i, x := range xs {
		keys[i] = rankKey(x)
	}
	c := sc.selectTop(keys, k)
	if c.ties == c.equal {
		for i, b := range keys {
			keep[i] = b >= c.thr
		}
		return
	}
	ties := c.ties
	for i, b := range keys {
		switch {
		case b > c.thr:
			keep[i] = true
		case b == c.thr && ties > 0:
			keep[i] = true
			ties--
		}
	}
}

// magKey orders magnitudes: the bits of float32(|x|).
func magKey(x float64) uint32 { return math.Float32bits(float32(math.Abs(x))) }

// rankKey orders elements for top-k: 0 for zeros, which are never kept,
// and magKey(x) + rankZeroGap for the others, so that the first bin of
// selectTop holds the zeros alone.
func rankKey(x float64) uint32 {
	b := magKey(x) + rankZeroGap
	if x == 0 {
		b = 0
	}
	return b
}

// selectTop's first pass counts rank keys by their bits from rankBinShift
// up: the exponent and the top four mantissa bits.
const (
	rankBinShift = 19
	rankZeroGap  = 1 << rankBinShift
	rankBins     = (math.MaxUint32>>1+rankZeroGap)>>rankBinShift + 1
)

// topCut is the kept set of a top-k selection: the keys above thr and,
// in index order, the first ties of the equal keys equal to thr; kept in
// all. Nothing is kept when kept == 0 (thr is then above every key).
type topCut struct {
	thr               uint32
	ties, equal, kept int
}

// selectTop selects the top k among elements of the given rank keys.
func (sc *topScratch) selectTop(keys []uint32, k int) topCut {
	// Two histograms, of even and odd indices, so that a run of keys in
	// one bin does not make every increment wait for the one before.
	// Counts fit: len(keys) <= MaxTensorElements < 1<<32.
	var h0, h1 [rankBins]uint32
	i := 0
	for ; i+2 <= len(keys); i += 2 {
		h0[keys[i]>>rankBinShift]++
		h1[keys[i+1]>>rankBinShift]++
	}
	if i < len(keys) {
		h0[keys[i]>>rankBinShift]++
	}
	hist := func(bin int) int { return int(h0[bin]) + int(h1[bin]) }
	k = min(k, len(keys)-hist(0))
	if k <= 0 {
		return topCut{thr: math.MaxUint32}
	}
	bin, above := rankBins-1, 0
	for above+hist(bin) < k {
		above += hist(bin)
		bin--
	}
	cand, rest := sc.cand[:0], keys
	if useAVX2 { // four keys at a time, a chunk at a time
		var buf [4096]uint32
		for len(rest) >= 4 {
			c := min(len(rest), len(buf)) &^ 3
			n := binKeysAVX2(&buf[0], &rest[0], c/4, uint32(bin))
			cand, rest = append(cand, buf[:n]...), rest[c:]
		}
	}
	for _, b := range rest {
		if b>>rankBinShift == uint32(bin) {
			cand = append(cand, b)
		}
	}
	sc.cand = cand
	thr, inBin, equal := kthLargest(cand, k-above)
	return topCut{thr: thr, ties: k - above - inBin, equal: equal, kept: k}
}

// kthLargest returns the k-th largest key (1 <= k <= len(keys)), how
// many keys are strictly larger and how many equal it. It overwrites
// keys (counting thr in them afterwards would count copies).
func kthLargest(keys []uint32, k int) (thr uint32, above, equal int) {
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
		thr |= uint32(d) << shift
		n := 0
		for _, x := range cand {
			if (x>>shift)&255 == uint32(d) {
				cand[n] = x
				n++
			}
		}
		cand = cand[:n]
	}
	return thr, above, len(cand)
}
