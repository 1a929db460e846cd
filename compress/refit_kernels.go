package compress

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
				gl[m] += float64(a0*x0[m]) + float64(a1*x1[m]) + float64(a2*x2[m]) + float64(a3*x3[m])
			}
		}
	}
	for ; i < f.n; i++ {
		x0 := f.row(i)
		for l, a := range x0 {
			gl := g[l*r : l*r+r][:len(x0)]
			for m := l; m < len(gl); m++ {
				gl[m] += float64(a * x0[m])
			}
		}
	}
	for l := 0; l < r; l++ {
		for m := 0; m < l; m++ {
			g[l*r+m] = g[m*r+l]
		}
	}
}

// mul sets dst (n x r, row-major) to F W for W r x r, row-major: a row
// of dst is the combination of the rows of W with the weights in the same
// row of F. Two rows of dst are made at once from four rows of W.
func mul(dst []float64, f factor, w []float64) {
	r := f.r
	dst = dst[:f.n*r]
	clear(dst)
	i := 0
	for ; i+2 <= f.n; i += 2 {
		x0, x1 := f.row(i), f.row(i+1)
		d0, d1 := dst[i*r:i*r+r], dst[(i+1)*r : (i+1)*r+r][:r]
		l := 0
		for ; l+4 <= r; l += 4 {
			a0, a1, a2, a3 := x0[l], x0[l+1], x0[l+2], x0[l+3]
			b0, b1, b2, b3 := x1[l], x1[l+1], x1[l+2], x1[l+3]
			w0 := w[l*r : l*r+r][:len(d0)]
			w1, w2, w3 := w[(l+1)*r:][:len(d0)], w[(l+2)*r:][:len(d0)], w[(l+3)*r:][:len(d0)]
			d1 := d1[:len(d0)]
			for j := range d0 {
				c0, c1, c2, c3 := w0[j], w1[j], w2[j], w3[j]
				d0[j] += (float64(a0*c0) + float64(a1*c1)) + (float64(a2*c2) + float64(a3*c3))
				d1[j] += (float64(b0*c0) + float64(b1*c1)) + (float64(b2*c2) + float64(b3*c3))
			}
		}
		for ; l < r; l++ {
			addScaled(d0, x0[l], w[l*r:l*r+r])
			addScaled(d1, x1[l], w[l*r:l*r+r])
		}
	}
	if i < f.n {
		x0, d0 := f.row(i), dst[i*r:i*r+r]
		for l, a := range x0 {
			addScaled(d0, a, w[l*r:l*r+r])
		}
	}
}

// addScaled adds s x to dst (len(dst) >= len(x)), four elements a step.
func addScaled(dst []float64, s float64, x []float64) {
	dst = dst[:len(x)]
	l := 0
	for ; l+4 <= len(x); l += 4 {
		d, v := dst[l:l+4:l+4], x[l:l+4:l+4]
		d[0] += float64(s * v[0])
		d[1] += float64(s * v[1])
		d[2] += float64(s * v[2])
		d[3] += float64(s * v[3])
	}
	for ; l < len(x); l++ {
		dst[l] += float64(s * x[l])
	}
}

// dot is the dot product of x and y (len(y) >= len(x)), in four partial
// sums.
func dot(x, y []float64) float64 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float64
	l := 0
	for ; l+4 <= len(x); l += 4 {
		s0 += float64(x[l] * y[l])
		s1 += float64(x[l+1] * y[l+1])
		s2 += float64(x[l+2] * y[l+2])
		s3 += float64(x[l+3] * y[l+3])
	}
	for ; l < len(x); l++ {
		s0 += float64(x[l] * y[l])
	}
	return (s0 + s1) + (s2 + s3)
}

// grow returns s with length n, reallocated only when too short.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
