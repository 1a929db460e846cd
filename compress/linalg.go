package compress

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
	"gonum.org/v1/gonum/mat"
)

// Truncated SVD for merging and refitting LoRA updates, in pure Go (gonum's
// BLAS and LAPACK). A LoRA update B A is never formed densely when it need
// not be: lowRankSVD works on the factors, randomizedSVD on a dense matrix
// only touches it through products with thin matrices.

// svdResult is a rank-k factorization U diag(S) V^T.
type svdResult struct {
	U *mat.Dense // m x k, orthonormal columns
	S []float64  // k, non-increasing
	V *mat.Dense // n x k, orthonormal columns
}

// balanced returns the factors U sqrt(S) (m x k) and sqrt(S) V^T (k x n)
// of the rank-k approximation, padded with zero columns and rows to rank r.
func (s svdResult) balanced(r int) (b, a *mat.Dense) {
	m, _ := s.U.Dims()
	n, _ := s.V.Dims()
	b, a = mat.NewDense(m, r, nil), mat.NewDense(r, n, nil)
	for j := 0; j < min(r, len(s.S)); j++ {
		w := math.Sqrt(s.S[j])
		for i := 0; i < m; i++ {
			b.Set(i, j, s.U.At(i, j)*w)
		}
		for i := 0; i < n; i++ {
			a.Set(j, i, s.V.At(i, j)*w)
		}
	}
	return b, a
}

// thinQR factors x (m x n) as Q R with Q m x p orthonormal, p = min(m, n).
func thinQR(x *mat.Dense) (q, r *mat.Dense) {
	m, n := x.Dims()
	p := min(m, n)
	a := mat.DenseCopyOf(x).RawMatrix()
	tau := make([]float64, p)
	work := make([]float64, 1)
	lapack64.Geqrf(a, tau, work, -1)
	work = make([]float64, max(int(work[0]), n))
	lapack64.Geqrf(a, tau, work, len(work))
	r = mat.NewDense(p, n, nil)
	for i := 0; i < p; i++ {
		for j := i; j < n; j++ {
			r.Set(i, j, a.Data[i*a.Stride+j])
		}
	}
	qa := blas64.General{Rows: m, Cols: p, Stride: a.Stride, Data: a.Data}
	lapack64.Orgqr(qa, tau, work, -1)
	if int(work[0]) > len(work) {
		work = make([]float64, int(work[0]))
	}
	lapack64.Orgqr(qa, tau, work, len(work))
	q = mat.NewDense(m, p, nil)
	for i := 0; i < m; i++ {
		copy(q.RawRowView(i), qa.Data[i*qa.Stride:i*qa.Stride+p])
	}
	return q, r
}

// exactSVD is the thin SVD of x truncated to rank k.
func exactSVD(x mat.Matrix, k int) (svdResult, error) {
	var svd mat.SVD
	if !svd.Factorize(x, mat.SVDThin) {
		return svdResult{}, fmt.Errorf("compress: SVD did not converge")
	}
	var u, v mat.Dense
	svd.UTo(&u)
	svd.VTo(&v)
	s := svd.Values(nil)
	k = min(k, len(s))
	return svdResult{
		U: mat.DenseCopyOf(u.Slice(0, u.RawMatrix().Rows, 0, k)),
		S: s[:k],
		V: mat.DenseCopyOf(v.Slice(0, v.RawMatrix().Rows, 0, k)),
	}, nil
}

// lowRankSVD is the SVD of b a (b m x r, a r x n) truncated to rank k,
// computed from the factors: QR of b and of a^T, then the SVD of the small
// core R_b R_a^T. Exact for any k, in O((m+n) r^2).
func lowRankSVD(b, a *mat.Dense, k int) (svdResult, error) {
	qb, rb := thinQR(b)
	qa, ra := thinQR(mat.DenseCopyOf(a.T()))
	var core mat.Dense
	core.Mul(rb, ra.T())
	c, err := exactSVD(&core, k)
	if err != nil {
		return c, err
	}
	var u, v mat.Dense
	u.Mul(qb, c.U)
	v.Mul(qa, c.V)
	return svdResult{U: &u, S: c.S, V: &v}, nil
}

// Randomized SVD parameters (Halko, Martinsson, Tropp 2011): oversampling
// and subspace iterations. Four iterations make the error of a merged TIES
// update within a fraction of a percent of the optimum (merge_test.go).
const (
	rsvdOversample = 10
	rsvdIters      = 4
)

// exactSVDWork is the largest m*n*min(m, n) for which truncatedSVD runs
// the exact SVD (256 x 256); above it the randomized SVD is much faster
// than gonum's full SVD.
const exactSVDWork = 1 << 24

// truncatedSVD returns the best rank-k approximation of x: exact for small
// matrices, randomized (deterministic seed) for large ones.
func truncatedSVD(x *mat.Dense, k int) (svdResult, error) {
	m, n := x.Dims()
	p := min(m, n)
	if k >= p || float64(m)*float64(n)*float64(p) <= exactSVDWork || k+rsvdOversample >= p/2 {
		return exactSVD(x, k)
	}
	return randomizedSVD(x, k, rsvdOversample, rsvdIters)
}

// randomizedSVD approximates the rank-k SVD of x with a Gaussian sketch of
// k+over columns refined by iters subspace iterations.
func randomizedSVD(x *mat.Dense, k, over, iters int) (svdResult, error) {
	m, n := x.Dims()
	l := min(k+over, m, n)
	rng := rand.New(rand.NewPCG(0x5eed, uint64(m)<<32|uint64(n)))
	omega := mat.NewDense(n, l, nil)
	raw := omega.RawMatrix().Data
	for i := range raw {
		raw[i] = rng.NormFloat64()
	}
	y := mat.NewDense(m, l, nil)
	y.Mul(x, omega)
	q, _ := thinQR(y)
	z := mat.NewDense(n, l, nil)
	for it := 0; it < iters; it++ {
		z.Mul(x.T(), q)
		qz, _ := thinQR(z)
		y.Mul(x, qz)
		q, _ = thinQR(y)
	}
	// small = Q^T x (l x n), through one GEMM with a transposed operand.
	small := mat.NewDense(l, n, nil)
	blas64.Gemm(blas.Trans, blas.NoTrans, 1, q.RawMatrix(), x.RawMatrix(), 0, small.RawMatrix())
	c, err := exactSVD(small, k)
	if err != nil {
		return c, err
	}
	var u mat.Dense
	u.Mul(q, c.U)
	return svdResult{U: &u, S: c.S, V: c.V}, nil
}
