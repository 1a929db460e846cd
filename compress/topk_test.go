package compress

import (
	"math"
	"math/rand/v2"
	"slices"
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

// TestSignsOfMatchesTopK checks that the refit's ternary factors keep what
// topK keeps, ties and zeros included, and carry the signs of the values.
func TestSignsOfMatchesTopK(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var ws refitScratch
	var tr tern
	for _, shape := range [][2]int{{50, 7}, {64, 16}, {3, 1}} {
		n, r := shape[0], shape[1]
		f := factor{n, r, make([]float64, n*r)}
		for i := range f.d {
			f.d[i] = float64(rng.IntN(21) - 10) // many ties, some zeros
		}
		keep := make([]bool, n*r)
		for _, k := range []int{0, 1, n * r / 5, n * r / 2, n * r} {
			topK(f.d, k, keep, &ws.top)
			signsOf(&tr, f, k, &ws)
			got := make([]bool, n*r)
			for i := 0; i < n; i++ {
				for _, e := range tr.row(i) {
					p := i*r + int(e>>1)
					got[p] = true
					if signs[e&1] != math.Copysign(1, f.d[p]) {
						t.Fatalf("%dx%d k=%d: element %d has sign %v, value %v", n, r, k, p, signs[e&1], f.d[p])
					}
				}
			}
			if !slices.Equal(got, keep) {
				t.Fatalf("%dx%d k=%d: signsOf keeps %v, topK %v", n, r, k, got, keep)
			}
		}
	}
}

// TestSelectTopCut: the cut's counts are those of the keys, with many
// keys equal to the threshold and spread among other keys of its bin,
// through the AVX2 kernel (on chunks and a remainder) and the Go loop.
func TestSelectTopCut(t *testing.T) {
	testSelectTopCut(t)
	withGo(func() { testSelectTopCut(t) })
}

func testSelectTopCut(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var sc topScratch
	for trial := 0; trial < 200; trial++ {
		keys := make([]uint32, 1+rng.IntN([]int{30, 3000, 20000}[trial%3]))
		for i := range keys {
			keys[i] = rankKey(float64(1 + rng.IntN(40)))
		}
		k := 1 + rng.IntN(len(keys))
		c := sc.selectTop(slices.Clone(keys), k)
		var above, equal int
		for _, b := range keys {
			if b > c.thr {
				above++
			} else if b == c.thr {
				equal++
			}
		}
		if c.equal != equal || c.ties != k-above || above >= k || above+equal < k {
			t.Fatalf("k = %d of %d: cut %+v; the keys have %d above and %d equal", k, len(keys), c, above, equal)
		}
	}
}
