package compress

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// Refit configures the product-aware compression of LoRA adapters.
//
// Plain ComPEFT ternarizes lora_A and lora_B independently, but the model
// uses their product B A. The refit keeps, per module, as many elements of
// each factor as the plain codec would (so the container costs the same)
// and chooses positions, signs and scales to approximate B A instead:
// ternarize A (top-k, sign, L2-optimal scale); set B* = argmin ||B* Â - B A||
// in closed form (an r x r solve); ternarize B* with the scale that
// minimizes the product error; then alternate, refitting A against B̂ and B
// against Â. The best iterate by product error is kept, the plain codec's
// factors included, so the refit is never worse in that measure.
type Refit struct {
	// Rounds is the number of alternations (refit A, then B) after the
	// first fit of B; 0 fits B once.
	Rounds int
	// Balanced starts from the balanced factorization of B A
	// (U sqrt(S), sqrt(S) V^T) instead of the stored factors.
	Balanced bool
}

// DefaultRefit is the refit `expertd compress --refit` runs; docs/quality.md
// has the measurements it was chosen from.
var DefaultRefit = Refit{Rounds: 0, Balanced: true}

// MaxRefitRounds bounds Refit.Rounds.
const MaxRefitRounds = 20

// AlphaRefit is the Alpha recorded in the header of a refit container:
// each tensor's scale is the refit's own.
const AlphaRefit = "refit"

// WithRefit compresses LoRA modules with the product-aware refit r. It
// applies to LoRA adapters only and needs alpha auto (the refit sets its
// own scales).
func WithRefit(r Refit) Option {
	return func(o *options) error {
		if r.Rounds < 0 || r.Rounds > MaxRefitRounds {
			return fmt.Errorf("%w: refit rounds %d not in [0, %d]", ErrOption, r.Rounds, MaxRefitRounds)
		}
		o.refit = &r
		return nil
	}
}

// compressRefit runs the plain codec for the per-tensor budgets (and for
// the tensors that are not LoRA factors), then refits every LoRA module.
func compressRefit(ts []Tensor, o options) ([]Coded, error) {
	if !o.alpha.Auto {
		return nil, fmt.Errorf("%w: --refit chooses its own scales; it cannot be combined with alpha %s", ErrOption, o.alpha)
	}
	cfg := *o.refit
	o.refit = nil
	coded, thrs, err := compressWith(ts, o)
	if err != nil {
		return nil, err
	}
	ts = append([]Tensor(nil), ts...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	pairs, _, err := loraPairs(ts)
	if err != nil {
		return nil, err
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("%w: --refit applies to LoRA adapters and these tensors hold no lora_A/lora_B pair", ErrOption)
	}
	// Modules are independent: refit them on GOMAXPROCS workers, each
	// writing only its own modules' entries of coded.
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := min(runtime.GOMAXPROCS(0), len(pairs)); w > 0; w-- {
		wg.Go(func() {
			var sc scratch
			var ws refitScratch
			for i := int(next.Add(1) - 1); i < len(pairs); i = int(next.Add(1) - 1) {
				p := pairs[i]
				a, b := ts[p.A], ts[p.B]
				ca, cb := &coded[p.A], &coded[p.B]
				f := refitModule(&ws, cfg, p, a.Tau, b.Tau, thrs[p.A], thrs[p.B], ca.Scale, cb.Scale)
				if f.plain {
					continue // the plain codec's factors were best: keep them as coded
				}
				codeOne(ca, Tensor{Name: a.Name, DType: a.DType, Shape: a.Shape, Tau: f.ta, Offset: a.Offset}, 1, &sc)
				codeOne(cb, Tensor{Name: b.Name, DType: b.DType, Shape: b.Shape, Tau: f.tb, Offset: b.Offset}, 1, &sc)
				ca.Scale, cb.Scale = f.sa, f.sb
			}
		})
	}
	wg.Wait()
	return coded, nil
}

// The refit works on both factors in one layout: X = B (out x r) and
// Y = A^T (in x r), so that P = X Y^T and fitting either factor against
// the other is the same computation. Ternary factors are kept dense (r is
// small) and every product with one skips its zeros.

// factor is a row-major n x r matrix.
type factor struct {
	n, r int
	d    []float64
}

func (f factor) row(i int) []float64 { return f.d[i*f.r : (i+1)*f.r] }

// tern is a ternary factor s T, T in {-1, 0, 1}, stored by rows: row i
// keeps columns cols[start[i]:start[i+1]] with signs sign[...].
type tern struct {
	n, r  int
	start []int32
	cols  []int32
	sign  []float64
	s     float64
}

// row returns the kept columns and signs of row i.
func (t *tern) row(i int) ([]int32, []float64) {
	a, b := t.start[i], t.start[i+1]
	return t.cols[a:b], t.sign[a:b]
}

// dense returns T as a row-major n x r matrix, transposed if asked.
func (t *tern) dense(transposed bool) []float32 {
	d := make([]float32, t.n*t.r)
	for i := 0; i < t.n; i++ {
		cols, sign := t.row(i)
		for q, j := range cols {
			if transposed {
				d[int(j)*t.n+i] = float32(sign[q])
			} else {
				d[i*t.r+int(j)] = float32(sign[q])
			}
		}
	}
	return d
}

// refitScratch holds buffers reused across modules.
type refitScratch struct {
	keep []bool
	keys []uint32
}

// refitResult holds a module's ternary factors in the layouts of A and B
// (±1 and 0) and their scales.
type refitResult struct {
	ta, tb []float32
	sa, sb float64
	plain  bool // the plain codec's factors were best
}

// refitModule refits one LoRA module. thrA and thrB are the plain codec's
// selection thresholds, sA and sB its scales: its factors are the
// candidate to beat, and the refit keeps as many elements as it did.
func refitModule(ws *refitScratch, cfg Refit, p loraPair, tauA, tauB []float32, thrA, thrB uint32, sA, sB float64) refitResult {
	res := refitResult{plain: true}
	x := factor{p.Out, p.R, to64(tauB)}
	y := factor{p.In, p.R, transpose64(tauA, p.R, p.In)}
	xp, yp := keptSigns(x, thrB), keptSigns(y, thrA)
	kA, kB := len(yp.cols), len(xp.cols)
	if kA == 0 || kB == 0 {
		return res
	}
	yp.s = sA
	ct, g := sideStats(y, yp)
	num, den := score(x, xp, ct, g)
	bestErr := -2*sB*num + sB*sB*den // ||X̂Ŷ^T - P||^2 - ||P||^2
	var bx, by *tern
	consider := func(xh, yh *tern, e float64) {
		if e < bestErr {
			bestErr, bx, by, res.plain = e, xh, yh, false
		}
	}
	y0 := y
	if cfg.Balanced {
		y0 = balancedY(x, y)
	}
	yh := ternL2(y0, kA, ws)
	ct, g = sideStats(y, yh)
	xh, e := fitFactor(x, ct, g, kB, ws)
	consider(xh, yh, e)
	for round := 0; round < cfg.Rounds; round++ {
		ct, g = sideStats(x, xh)
		yh, e = fitFactor(y, ct, g, kA, ws)
		consider(xh, yh, e)
		ct, g = sideStats(y, yh)
		xh, e = fitFactor(x, ct, g, kB, ws)
		consider(xh, yh, e)
	}
	if !res.plain {
		res.tb, res.sb = bx.dense(false), bx.s
		res.ta, res.sa = by.dense(true), by.s
	}
	return res
}

// sideStats returns C^T and G for fitting the other factor against Ŷ:
// C = Y^T Ŷ and G = Ŷ^T Ŷ, both r x r, row-major (C^T[j][l] = C[l][j]).
func sideStats(y factor, yh *tern) (ct, g []float64) {
	r := y.r
	ct, g = make([]float64, r*r), make([]float64, r*r)
	for k := 0; k < y.n; k++ {
		cols, sign := yh.row(k)
		yr := y.row(k)
		for q, j := range cols {
			sj := sign[q]
			c := ct[int(j)*r : int(j+1)*r]
			for l, v := range yr {
				c[l] += sj * v
			}
			gr := g[int(j)*r:]
			for q2, l := range cols {
				gr[l] += sj * sign[q2]
			}
		}
	}
	for i := range ct {
		ct[i] *= yh.s
		g[i] *= yh.s * yh.s
	}
	return ct, g
}

// score returns <T, X C> and <T, T G>: with X̂ = s T the product error is
// ||P||^2 - 2 s num + s^2 den.
func score(x factor, t *tern, ct, g []float64) (num, den float64) {
	r := x.r
	for i := 0; i < x.n; i++ {
		cols, sign := t.row(i)
		xr := x.row(i)
		for q, j := range cols {
			c := ct[int(j)*r : int(j+1)*r]
			var dot float64
			for l, v := range xr {
				dot += v * c[l]
			}
			num += sign[q] * dot
			var gs float64
			for q2, l := range cols {
				gs += sign[q2] * g[int(l)*r+int(j)]
			}
			den += sign[q] * gs
		}
	}
	return num, den
}

// fitFactor returns the ternary X̂ with k kept that best completes the
// other factor (given by C and G): X* = X C G^-1 ternarized, with the
// least-squares scale. It also returns the product error minus ||P||^2.
func fitFactor(x factor, ct, g []float64, k int, ws *refitScratch) (*tern, float64) {
	r := x.r
	mt := solveSym(g, ct, r) // M^T = G^-1 C^T, M = C G^-1
	star := make([]float64, len(x.d))
	blas64.Gemm(blas.NoTrans, blas.Trans, 1,
		blas64.General{Rows: x.n, Cols: r, Stride: r, Data: x.d},
		blas64.General{Rows: r, Cols: r, Stride: r, Data: mt},
		0, blas64.General{Rows: x.n, Cols: r, Stride: r, Data: star})
	t := signsOf(factor{x.n, r, star}, k, ws)
	num, den := score(x, t, ct, g)
	if !(den > 0) || num == 0 {
		return t, 0
	}
	t.s = num / den
	if t.s < 0 {
		for i := range t.sign {
			t.sign[i] = -t.sign[i]
		}
		t.s = -t.s
	}
	return t, -num * num / den
}

// solveSym returns G^-1 B for a symmetric positive semidefinite r x r G,
// with a tiny ridge so that a rank-deficient G (a factor column with
// nothing kept) gives zeros rather than a failure.
func solveSym(g, b []float64, r int) []float64 {
	reg := make([]float64, r*r)
	copy(reg, g)
	var tr float64
	for i := 0; i < r; i++ {
		tr += g[i*r+i]
	}
	ridge := 1e-9*tr/float64(r) + 1e-300
	for i := 0; i < r; i++ {
		reg[i*r+i] += ridge
	}
	var ch mat.Cholesky
	var sol mat.Dense
	if !ch.Factorize(mat.NewSymDense(r, reg)) || ch.SolveTo(&sol, mat.NewDense(r, r, append([]float64(nil), b...))) != nil {
		return make([]float64, r*r)
	}
	return sol.RawMatrix().Data
}

// balancedY returns the Y of the balanced factorization of X Y^T: with
// Cholesky factors X^T X = Rx^T Rx and Y^T Y = Ry^T Ry and the SVD
// Rx Ry^T = U S V^T, Y0 = Y Ry^-1 V sqrt(S). It returns y unchanged when
// a factor is rank deficient.
func balancedY(x, y factor) factor {
	r := x.r
	gram := func(f factor) *mat.SymDense {
		s := mat.NewSymDense(r, nil)
		blas64.Syrk(blas.Trans, 1, blas64.General{Rows: f.n, Cols: r, Stride: r, Data: f.d}, 0, s.RawSymmetric())
		return s
	}
	var cx, cy mat.Cholesky
	if !cx.Factorize(gram(x)) || !cy.Factorize(gram(y)) {
		return y
	}
	var rx, ry mat.TriDense
	cx.UTo(&rx)
	cy.UTo(&ry)
	var core mat.Dense
	core.Mul(&rx, ry.T())
	svd, err := exactSVD(&core, r)
	if err != nil {
		return y
	}
	w := mat.DenseCopyOf(svd.V)
	for j, s := range svd.S {
		for i := 0; i < r; i++ {
			w.Set(i, j, w.At(i, j)*math.Sqrt(s))
		}
	}
	var m0 mat.Dense
	if err := m0.Solve(&ry, w); err != nil {
		return y
	}
	out := make([]float64, len(y.d))
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1,
		blas64.General{Rows: y.n, Cols: r, Stride: r, Data: y.d},
		m0.RawMatrix(), 0, blas64.General{Rows: y.n, Cols: r, Stride: r, Data: out})
	return factor{y.n, r, out}
}

// ternL2 keeps the k largest magnitudes of f with the L2-optimal scale,
// the mean magnitude of the kept elements.
func ternL2(f factor, k int, ws *refitScratch) *tern {
	t := signsOf(f, k, ws)
	var sum float64
	for i := 0; i < t.n; i++ {
		cols, _ := t.row(i)
		for _, j := range cols {
			sum += math.Abs(f.d[i*f.r+int(j)])
		}
	}
	if len(t.cols) > 0 {
		t.s = sum / float64(len(t.cols))
	}
	return t
}

// keptSigns is sign(f) where the plain codec keeps f: absKey >= max(thr, 1).
func keptSigns(f factor, thr uint32) *tern {
	thr = max(thr, 1)
	t := &tern{n: f.n, r: f.r, start: make([]int32, f.n+1)}
	for i := 0; i < f.n; i++ {
		for j, v := range f.row(i) {
			if absKey(float32(v)) >= thr {
				t.cols = append(t.cols, int32(j))
				t.sign = append(t.sign, math.Copysign(1, v))
			}
		}
		t.start[i+1] = int32(len(t.cols))
	}
	return t
}

// signsOf is sign(f) on its k largest magnitudes, with scale 0.
func signsOf(f factor, k int, ws *refitScratch) *tern {
	if cap(ws.keep) < len(f.d) {
		ws.keep = make([]bool, len(f.d))
		ws.keys = make([]uint32, 0, len(f.d))
	}
	keep := ws.keep[:len(f.d)]
	ws.keys = topK(f.d, k, keep, ws.keys)
	t := &tern{n: f.n, r: f.r, start: make([]int32, f.n+1)}
	for i := 0; i < f.n; i++ {
		for j, v := range f.row(i) {
			if keep[i*f.r+j] {
				t.cols = append(t.cols, int32(j))
				t.sign = append(t.sign, math.Copysign(1, v))
			}
		}
		t.start[i+1] = int32(len(t.cols))
	}
	return t
}

func to64(xs []float32) []float64 {
	d := make([]float64, len(xs))
	for i, v := range xs {
		d[i] = float64(v)
	}
	return d
}

// transpose64 returns the m x n row-major xs transposed, as float64.
func transpose64(xs []float32, m, n int) []float64 {
	d := make([]float64, len(xs))
	for i := 0; i < m; i++ {
		for j, v := range xs[i*n : (i+1)*n] {
			d[j*m+i] = float64(v)
		}
	}
	return d
}
