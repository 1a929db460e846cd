package compress

import (
	"math/rand/v2"
	"sort"
	"testing"
)

func TestTopK(t *testing.T) {
	keep := make([]bool, 8)
	var sc topScratch
	cases := []struct {
		xs   []float64
		k    int
		want []bool
	}{
		{[]float64{1, -3, 2, 0}, 2, []bool{false, true, true, false}},
		{[]float64{1, -1, 1, 1}, 2, []bool{true, true, false, false}}, // ties: earlier index
		{[]float64{0, 0, 5, 0}, 3, []bool{false, false, true, false}}, // zeros never kept
		{[]float64{4, 3}, 0, []bool{false, false}},
		// Below float32's range: kept after all others, in index order.
		{[]float64{1e-300, 0, 2, 1e-40}, 2, []bool{false, false, true, true}},
		{[]float64{1e-300, 0, 2, 1e-300}, 2, []bool{true, false, true, false}},
		{[]float64{1e-300, 0, 2, 1e-40}, 9, []bool{true, false, true, true}},
	}
	for _, c := range cases {
		topK(c.xs, c.k, keep, &sc)
		for i, w := range c.want {
			if keep[i] != w {
				t.Fatalf("topK(%v, %d) = %v, want %v", c.xs, c.k, keep[:len(c.xs)], c.want)
			}
		}
	}
	// Against a sort, on values with many ties.
	rng := rand.New(rand.NewPCG(3, 4))
	xs := make([]float64, 5000)
	for i := range xs {
		xs[i] = float64(rng.IntN(200) - 100)
	}
	keep = make([]bool, len(xs))
	for _, k := range []int{1, 17, 2500, 4999, 6000} {
		topK(xs, k, keep, &sc)
		idx := make([]int, len(xs))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return abs(xs[idx[a]]) > abs(xs[idx[b]]) })
		n := 0
		for _, i := range idx {
			if n < k && xs[i] != 0 {
				if !keep[i] {
					t.Fatalf("k=%d: element %d (%v) not kept", k, i, xs[i])
				}
				n++
			} else if keep[i] {
				t.Fatalf("k=%d: element %d (%v) kept", k, i, xs[i])
			}
		}
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
