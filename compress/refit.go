package compress

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

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

// compressRefit runs the plain codec for the per-tensor budgets and
// scales (coding only the tensors that are not LoRA factors), then refits
// every LoRA module and codes its factors, the refit's or the plain ones.
func compressRefit(ts []Tensor, o options) ([]Coded, error) {
	if !o.alpha.Auto {
		return nil, fmt.Errorf("%w: --refit chooses its own scales; it cannot be combined with alpha %s", ErrOption, o.alpha)
	}
	cfg := *o.refit
	o.refit = nil
	coded, thrs, err := compressWith(ts, o, isLoRAFactor)
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
			ws := refitScratches.Get().(*refitScratch)
			defer refitScratches.Put(ws)
			for i := int(next.Add(1) - 1); i < len(pairs); i = int(next.Add(1) - 1) {
				p := pairs[i]
				a, b := ts[p.A], ts[p.B]
				ca, cb := &coded[p.A], &coded[p.B]
				f := refitResult{plain: true}
				if refittable(p) {
					f = refitModule(ws, cfg, p, a.Tau, b.Tau, thrs[p.A], thrs[p.B], ca.Scale, cb.Scale)
				}
				if f.plain { // the plain codec's factors were best, or it was not refitted
					sa, sb := ca.Scale, cb.Scale
					codeOne(ca, a, thrs[p.A], &sc)
					codeOne(cb, b, thrs[p.B], &sc)
					ca.Scale, cb.Scale = sa, sb
					continue
				}
				codeKept(ca, a, f.pa, &sc)
				codeKept(cb, b, f.pb, &sc)
				ca.Scale, cb.Scale = f.sa, f.sb
			}
		})
	}
	wg.Wait()
	return coded, nil
}

// maxRefitRank bounds the rank of a module the refit takes on: its work
// and memory grow with the rank squared (r x r statistics, solves and an
// SVD), about 160 r^2 bytes, whatever the module's size.
const maxRefitRank = 1024

// refittable reports whether the refit takes on module p: a rank no larger
// than maxRefitRank, nor than the module's smaller side (beyond it the
// factors cannot be of full rank: a crafted adapter, not a trained one).
// Other modules keep the plain codec's factors.
func refittable(p loraPair) bool {
	return p.R <= maxRefitRank && p.R <= min(p.In, p.Out)
}

// codeKept codes into c (all but the scale) the ternary replacement of t
// given by its kept elements, position<<1 | sign bit in increasing order.
func codeKept(c *Coded, t Tensor, pos []uint32, sc *scratch) {
	n := int64(len(t.Tau))
	if int64(len(pos))*2 > n { // the dense code goes through the values
		tau := make([]float32, n)
		for _, p := range pos {
			tau[p>>1] = float32(signs[p&1])
		}
		t.Tau = tau
		codeOne(c, t, 1, sc)
		return
	}
	tc, _ := encodeSparse(pos, n, nil, sc)
	setCoded(c, t, tc)
}

// refitScratch holds one worker's buffers, reused across modules.
type refitScratch struct {
	x, y    []float64 // the module's factors
	dense   []float64 // the balanced start, then the unconstrained fits
	ct, g   []float64 // r x r statistics of the fixed side
	top     topScratch
	rowKeys []uint32 // the rank keys of one row
	cnt     []int64  // T^T T before it becomes float64
	ts      [6]tern  // current and next iterate of each side, then the best pair
	pa, pb  []uint32 // the output
}

// refitScratches keeps workers' buffers from one compression to the
// next (at most about 40 bytes per parameter of the largest module
// refitted; the garbage collector empties the pool).
var refitScratches = sync.Pool{New: func() any { return new(refitScratch) }}

// refitResult holds a module's ternary factors, their kept elements in the
// layouts of A and B as codeKept takes them, and their scales. pa and pb
// are the worker's buffers.
type refitResult struct {
	pa, pb []uint32
	sa, sb float64
	plain  bool // the plain codec's factors were best
}

// refitModule refits one LoRA module. thrA and thrB are the plain codec's
// selection thresholds, sA and sB its scales: its factors are the
// candidate to beat, and the refit keeps as many elements as it did.
func refitModule(ws *refitScratch, cfg Refit, p loraPair, tauA, tauB []float32, thrA, thrB uint32, sA, sB float64) refitResult {
	res := refitResult{plain: true}
	ws.x = float64s(ws.x, tauB)
	ws.y = transpose64(ws.y, tauA, p.R, p.In)
	x, y := factor{p.Out, p.R, ws.x}, factor{p.In, p.R, ws.y}
	ws.ct, ws.g = grow(ws.ct, p.R*p.R), grow(ws.g, p.R*p.R)
	ct, g := ws.ct, ws.g
	// xs[cx] and ys[cy] are the current iterates, the others the next.
	xs, ys := [2]*tern{&ws.ts[0], &ws.ts[1]}, [2]*tern{&ws.ts[2], &ws.ts[3]}
	bx, by := &ws.ts[4], &ws.ts[5]
	cx, cy := 0, 0
	xp, yp := keptSigns(xs[cx], x, thrB, ws), keptSigns(ys[cy], y, thrA, ws)
	kA, kB := yp.kept(), xp.kept()
	if kA == 0 || kB == 0 {
		return res
	}
	xp.stats(x, ws)
	yp.stats(y, ws)
	yp.s = sA
	sideStats(ct, g, yp)
	num, den := xp.errorTerms(ct, g)
	bestErr := float64(-2*sB*num) + float64(sB*sB*den) // ||X̂Ŷ^T - P||^2 - ||P||^2
	consider := func(e float64) {
		if e < bestErr {
			bestErr, res.plain = e, false
			bx.copyFrom(xs[cx])
			by.copyFrom(ys[cy])
		}
	}
	y0 := y
	if cfg.Balanced {
		y0 = balancedY(ws, x, y)
	}
	cy = 1 - cy
	ternL2(ys[cy], y0, kA, ws).stats(y, ws)
	sideStats(ct, g, ys[cy])
	cx = 1 - cx
	consider(fitFactor(xs[cx], x, ct, g, kB, ws))
	for round := 0; round < cfg.Rounds; round++ {
		sideStats(ct, g, xs[cx])
		cy = 1 - cy
		consider(fitFactor(ys[cy], y, ct, g, kA, ws))
		sideStats(ct, g, ys[cy])
		cx = 1 - cx
		consider(fitFactor(xs[cx], x, ct, g, kB, ws))
	}
	if !res.plain {
		ws.pb, ws.pa = bx.positions(ws.pb, false), by.positions(ws.pa, true)
		res.pb, res.sb = ws.pb, bx.s
		res.pa, res.sa = ws.pa, by.s
	}
	return res
}

// fitFactor sets t to the ternary X̂ with k kept that best completes the
// other factor (given by C and G): X* = X C G^-1 ternarized, with the
// least-squares scale. It returns the product error minus ||P||^2.
func fitFactor(t *tern, x factor, ct, g []float64, k int, ws *refitScratch) float64 {
	mt := solveSym(g, ct, x.r) // M^T = G^-1 C^T, M = C G^-1
	ws.dense = grow(ws.dense, len(x.d))
	mul(ws.dense, x, transposed(mt, x.r)) // X* = X M
	signsOf(t, factor{x.n, x.r, ws.dense}, k, ws).stats(x, ws)
	num, den := t.errorTerms(ct, g)
	if !(den > 0) || num == 0 {
		return 0
	}
	t.s = num / den
	if t.s < 0 {
		t.negate()
		t.s = -t.s
	}
	return -num * num / den
}

// transposed returns the r x r row-major m transposed.
func transposed(m []float64, r int) []float64 {
	t := make([]float64, r*r)
	for i := 0; i < r; i++ {
		for j := 0; j < r; j++ {
			t[j*r+i] = m[i*r+j]
		}
	}
	return t
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
// Rx Ry^T = U S V^T, Y0 = Y Ry^-1 V sqrt(S), in ws.dense. It returns y
// unchanged when a factor is rank deficient.
func balancedY(ws *refitScratch, x, y factor) factor {
	r := x.r
	gramOf := func(f factor) *mat.SymDense {
		g := make([]float64, r*r)
		gram(g, f)
		return mat.NewSymDense(r, g)
	}
	var cx, cy mat.Cholesky
	if !cx.Factorize(gramOf(x)) || !cy.Factorize(gramOf(y)) {
		return y
	}
	var rx, ry mat.TriDense
	cx.UTo(&rx)
	cy.UTo(&ry)
	var core mat.Dense
	core.Mul(mat.DenseCopyOf(&rx), mat.DenseCopyOf(&ry).T())
	var svd mat.SVD
	if !svd.Factorize(&core, mat.SVDThinV) {
		return y
	}
	var w mat.Dense
	svd.VTo(&w)
	for j, s := range svd.Values(nil) {
		for i := 0; i < r; i++ {
			w.Set(i, j, w.At(i, j)*math.Sqrt(s))
		}
	}
	var m0 mat.Dense
	if err := m0.Solve(&ry, &w); err != nil {
		return y
	}
	ws.dense = grow(ws.dense, len(y.d))
	mul(ws.dense, y, m0.RawMatrix().Data)
	return factor{y.n, r, ws.dense}
}
