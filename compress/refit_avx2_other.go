//go:build !amd64

package compress

// Off amd64 the Go loops of refit_kernels.go run.
const haveAVX2 = false

var useAVX2 = false

func mulPairAVX2(d0, d1, x0, x1, w *float64, r, nv int)         { panic("no AVX2") }
func gram8AVX2(gm, x *float64, r, nv int)                       { panic("no AVX2") }
func statsCols8AVX2(ft, f *float64, bits *uint64, r, words int) { panic("no AVX2") }
func statsCols4AVX2(ft, f *float64, bits *uint64, r, words int) { panic("no AVX2") }
func statsCols1AVX2(ft, f *float64, bits *uint64, r, words int) { panic("no AVX2") }
func overlapAVX2(cnt *int64, bits *uint64, r, words int)        { panic("no AVX2") }
func rankKeysAVX2(keys *uint32, f *float64, nv int)             { panic("no AVX2") }
func fillAVX2(el *uint32, start *int32, f *float64, n, r int, thr uint32, k int, acc *uint64) int {
	panic("no AVX2")
}
func binKeysAVX2(dst, keys *uint32, nv int, bin uint32) int  { panic("no AVX2") }
func float64sAVX2(dst *float64, xs *float32, nv int)         { panic("no AVX2") }
func transpose8AVX2(dst *float64, xs *float32, m, n, nv int) { panic("no AVX2") }
