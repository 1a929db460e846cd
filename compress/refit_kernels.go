package compress

import "math/bits"

// Dense kernels of the refit on n x r row-major factors, r small (a LoRA
// rank). Their loops keep several independent sums in registers, so that
// additions do not wait for each other, and share each load among them.

// gram sets g (r x r, row-major) to F^T F.
func gram(g []float64, f factor) {
	r := f.r
	g = g[:r*r]
	clear(g)
	i := 0
	for ; i+4 <= f.n; i += 4 {
		x0 := f.row(i)
		x1, x2, x3 := f.row(i + 1)[:len(x0)], f.row(i + 2)[:len(x0)], f.row(i + 3)[:len(x0)]
		for l := range x0 {
			a0, a1, a2, a3 := x0[l], x1[l], x2[l], x3[l]
			gl := g[l*r : l*r+r][:len(x0)]
			for m := l; m < len(gl); m++ {
				gl[m] += a0*x0[m] + a1*x1[m] + a2*x2[m] + a3*x3[m]
			}
		}
	}
	for ; i < f.n; i++ {
		x0 := f.row(i)
		for l, a := range x0 {
			gl := g[l*r : l*r+r][:len(x0)]
			for m := l; m < len(gl); m++ {
				gl[m] += a * x0[m]
			}
		}
	}
	for l := 0; l < r; l++ {
		for m := 0; m < l; m++ {
			g[l*r+m] = g[m*r+l]
		}
	}
}

// mul sets dst (n x r, row-major) to F W for W r x r, row-major: row i
// of dst is the combination of the rows of W with the weights in row i of
// F, taken four at a time.
func mul(dst []float64, f factor, w []float64) {
	r := f.r
	dst = dst[:f.n*r]
	for i := 0; i < f.n; i++ {
		x, d := f.row(i), dst[i*r:i*r+r]
		clear(d)
		l := 0
		for ; l+4 <= r; l += 4 {
			a0, a1, a2, a3 := x[l], x[l+1], x[l+2], x[l+3]
			w0 := w[l*r : l*r+r][:len(d)]
			w1, w2, w3 := w[(l+1)*r:][:len(d)], w[(l+2)*r:][:len(d)], w[(l+3)*r:][:len(d)]
			for j := range d {
				d[j] += a0*w0[j] + a1*w1[j] + a2*w2[j] + a3*w3[j]
			}
		}
		for ; l < r; l++ {
			a, wl := x[l], w[l*r : l*r+r][:len(d)]
			for j := range d {
				d[j] += a * wl[j]
			}
		}
	}
}

// dot is the dot product of x and y (len(y) >= len(x)), in four partial
// sums.
func dot(x, y []float64) float64 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float64
	l := 0
	for ; l+4 <= len(x); l += 4 {
		s0 += x[l] * y[l]
		s1 += x[l+1] * y[l+1]
		s2 += x[l+2] * y[l+2]
		s3 += x[l+3] * y[l+3]
	}
	for ; l < len(x); l++ {
		s0 += x[l] * y[l]
	}
	return (s0 + s1) + (s2 + s3)
}

// addRows adds sign[q] * F[rows[q]] to dst (length r) for every q, in
// order.
func addRows(dst []float64, f factor, rows []int32, sign []float64) {
	r := f.r
	dst = dst[:r]
	sign = sign[:len(rows)]
	l := 0
	for ; l+8 <= r; l += 8 {
		d := dst[l : l+8]
		s0, s1, s2, s3, s4, s5, s6, s7 := d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
		for q, i := range rows {
			x := f.d[int(i)*r+l:][:8]
			sg := sign[q]
			s0 += sg * x[0]
			s1 += sg * x[1]
			s2 += sg * x[2]
			s3 += sg * x[3]
			s4 += sg * x[4]
			s5 += sg * x[5]
			s6 += sg * x[6]
			s7 += sg * x[7]
		}
		d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7] = s0, s1, s2, s3, s4, s5, s6, s7
	}
	for ; l < r; l++ {
		s0 := dst[l]
		for q, i := range rows {
			s0 += sign[q] * f.d[int(i)*r+l]
		}
		dst[l] = s0
	}
}

// signedOverlap is the sum over rows of t_j t_l for two ternary columns
// given as bitsets of kept rows (kj, kl) and of negative signs (nj, nl).
func signedOverlap(kj, kl, nj, nl []uint64) int {
	kl, nj, nl = kl[:len(kj)], nj[:len(kj)], nl[:len(kj)]
	var both, opposite int
	for w, a := range kj {
		b := a & kl[w]
		both += bits.OnesCount64(b)
		opposite += bits.OnesCount64(b & (nj[w] ^ nl[w]))
	}
	return both - 2*opposite
}

// grow returns s with length n, reallocated only when too short.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
