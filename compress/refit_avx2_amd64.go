package compress

// The refit's dense kernels in AVX2 (refit_avx2_amd64.s), four float64
// lanes at a time across independent output elements: each element goes
// through the same multiplications and additions, in the same order, as
// in the Go loops of refit_kernels.go (no fused multiply-add), so both
// give the same bits and a container the same bytes on every machine
// (TestRefitKernelsMatchGo).

// haveAVX2 is set when the CPU and the OS support AVX2; useAVX2 selects
// the kernels (the tests turn it off to run the Go loops).
var (
	haveAVX2 = hasAVX2()
	useAVX2  = haveAVX2
)

func hasAVX2() bool {
	maxID, _, _, _ := cpuid(0, 0)
	if maxID < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const osxsave, avx = 1 << 27, 1 << 28
	if ecx1&osxsave == 0 || ecx1&avx == 0 {
		return false
	}
	if xcr0 := xgetbv(); xcr0&6 != 6 { // the OS saves XMM and YMM state
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	return ebx7&(1<<5) != 0
}

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

func xgetbv() uint32

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

// statsAVX2 is addSignedCols(ft, el[start[i]:start[i+1]], row i of f, 0)
// for each row i < n of f (n x r), restricted to the first 4*nv columns,
// nv = r/4.
//
//go:noescape
func statsAVX2(ft *float64, r int, f *float64, start *int32, el *uint32, n, nv int)
