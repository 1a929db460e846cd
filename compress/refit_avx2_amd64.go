package compress

import "golang.org/x/sys/cpu"

// The refit's dense kernels in AVX2 (refit_avx2_amd64.s), four float64
// lanes at a time across independent output elements: each element goes
// through the same multiplications and additions, in the same order, as
// in the Go loops of refit_kernels.go (no fused multiply-add), so both
// give the same bits and a container the same bytes on every machine
// (TestRefitKernelsMatchGo).

// haveAVX2 is set when the CPU and the OS support AVX2; useAVX2 selects
// the kernels (the tests turn it off to run the Go loops).
var (
	haveAVX2 = cpu.X86.HasAVX2 // CPU and OS support
	useAVX2  = haveAVX2
)

// mulPairAVX2 is mulPair(d0, d1, x0, x1, w, 0) restricted to the first
// 4*nv columns, nv = r/4, on r-long rows and r x r w.
//
//go:noescape
func mulPairAVX2(d0, d1, x0, x1, w *float64, r, nv int)

// gram8AVX2 is gram4 on the rows x..x+3, then on the rows x+4..x+7 (x
// holds eight rows of r), restricted to the first 4*nv columns, nv = r/4;
// it also writes some elements below the diagonal (those in the
// diagonal's group of four), which gram then overwrites.
//
//go:noescape
func gram8AVX2(gm, x *float64, r, nv int)

// statsCols8AVX2, statsCols4AVX2 and statsCols1AVX2 add to T^T F
// (ft, r x r) the products of its ternary columns with the 32, 16 or 4
// columns of f (n x r) from the ones ft and f point at: for each column
// j, ft[j] gets row i of f added, negated where T is negative, for each
// row i that keeps column j, in increasing order, as addSignedCols does.
// bits is T's bitsets (tern.bits, words blocks); r is
// the length of the rows of ft and f.
//
//go:noescape
func statsCols8AVX2(ft, f *float64, bits *uint64, r, words int)

//go:noescape
func statsCols4AVX2(ft, f *float64, bits *uint64, r, words int)

//go:noescape
func statsCols1AVX2(ft, f *float64, bits *uint64, r, words int)

// overlapAVX2 is signedOverlaps for r a multiple of four; it also writes
// some elements of cnt below the diagonal (those in the diagonal's group
// of four).
//
//go:noescape
func overlapAVX2(cnt *int64, bits *uint64, r, words int)

// rankKeysAVX2 sets keys[i] = rankKey(f[i]) for i < 4 nv.
//
//go:noescape
func rankKeysAVX2(keys *uint32, f *float64, nv int)

// fillAVX2 is the branch-free loop of tern.fill (no ties) on at most 64
// rows of f (n x r, r a multiple of four) from k kept on, rank keys made
// from f: it writes the kept elements of each row to el and the counts
// so far to start[1:], and returns the count; el must have room for k + n
// r elements. It also sets, in acc (2r words), bit i of word j for each
// kept element (i, j) and of word r + j if it is negative.
//
//go:noescape
func fillAVX2(el *uint32, start *int32, f *float64, n, r int, thr uint32, k int, acc *uint64) int

// binKeysAVX2 copies to dst, in order, the keys among the first 4 nv
// whose bits from rankBinShift up equal bin, and returns how many; dst
// must have room for 4 nv.
//
//go:noescape
func binKeysAVX2(dst, keys *uint32, nv int, bin uint32) int

// float64sAVX2 sets dst[i] = float64(xs[i]) for i < 4 nv.
//
//go:noescape
func float64sAVX2(dst *float64, xs *float32, nv int)

// transpose8AVX2 sets dst[j m + k] = float64(xs[k n + j]) for the eight
// rows k of xs (m x n) from xs on and the columns j < 4 nv, dst pointing
// at the element of its row 0 for xs's row 0.
//
//go:noescape
func transpose8AVX2(dst *float64, xs *float32, m, n, nv int)
