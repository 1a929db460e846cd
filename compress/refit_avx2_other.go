//go:build !amd64

package compress

// Off amd64 the Go loops of refit_kernels.go run.
const haveAVX2 = false

var useAVX2 = false

func mulPairAVX2(d0, d1, x0, x1, w *float64, r, nv int) { panic("no AVX2") }
func gram8AVX2(gm, x *float64, r, nv int)               { panic("no AVX2") }
func statsAVX2(ft *float64, r int, f *float64, start *int32, el *uint32, n, nv int) {
	panic("no AVX2")
}
