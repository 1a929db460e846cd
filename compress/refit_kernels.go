package compress

// Dense kernels of the refit on n x r row-major factors, r small (a LoRA
// rank). Their loops keep several independent sums in registers, so that
// additions do not wait for each other, and share each load among them.

// gram sets g (r x r, row-major) to F^T F. Rows are taken four at a
// time: each element gets ((p0 + p1) + p2) + p3 added for every block of
// four rows, in order, then one product for each row left.
func gram(g []float64, f factor) {
	r := f.r
	g = g[:r*r]
	clear(g)
	i := 0
	if useAVX2 && r >= 4 {
		for ; i+8 <= f.n; i += 8 { // the columns of whole groups of four
			gram8AVX2(&g[0], &f.d[i*r], r, r/4)
		}
		for i0 := 0; i0 < i && r%4 != 0; i0 += 4 { // the other columns
			gram4(g, f.row(i0), f.row(i0+1), f.row(i0+2), f.row(i0+3), r&^3)
		}
	}
	for ; i+4 <= f.n; i += 4 {
		gram4(g, f.row(i), f.row(i+1), f.row(i+2), f.row(i+3), 0)
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

// gram4 adds to the upper triangle of g, in its columns from m0 on, the
// products of the four rows x0..x3 (one block of gram).
func gram4(g, x0, x1, x2, x3 []float64, m0 int) {
	r := len(x0)
	for l := range x0 {
		a0, a1, a2, a3 := x0[l], x1[l], x2[l], x3[l]
		gl := g[l*r : l*r+r][:len(x0)]
		for m := max(l, m0); m < len(gl); m++ {
			gl[m] += float64(a0*x0[m]) + float64(a1*x1[m]) + float64(a2*x2[m]) + float64(a3*x3[m])
		}
	}
}

// mul sets dst (n x r, row-major) to F W for W r x r, row-major: a row
// of dst is the combination of the rows of W with the weights in the same
// row of F. Two rows of dst are made at once: each element gets
// (a0 c0 + a1 c1) + (a2 c2 + a3 c3) added for every four rows of W, in
// order, then one product for each row of W left.
func mul(dst []float64, f factor, w []float64) {
	r := f.r
	dst = dst[:f.n*r]
	clear(dst)
	i := 0
	for ; i+2 <= f.n; i += 2 {
		x0, x1 := f.row(i), f.row(i+1)
		d0, d1 := dst[i*r:i*r+r], dst[(i+1)*r : (i+1)*r+r][:r]
		j0 := 0
		if useAVX2 && r >= 4 {
			j0 = r &^ 3
			mulPairAVX2(&d0[0], &d1[0], &x0[0], &x1[0], &w[0], r, r/4)
		}
		if j0 < r {
			mulPair(d0, d1, x0, x1, w, j0)
		}
		for l := r &^ 3; l < r; l++ {
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

// mulPair adds to the columns from j0 on of the rows d0 and d1 of F W
// the products of the rows x0 and x1 of F with every whole block of four
// rows of W.
func mulPair(d0, d1, x0, x1, w []float64, j0 int) {
	r := len(d0)
	d1, x0, x1 = d1[:r], x0[:r], x1[:r]
	for l := 0; l+4 <= r; l += 4 {
		a0, a1, a2, a3 := x0[l], x0[l+1], x0[l+2], x0[l+3]
		b0, b1, b2, b3 := x1[l], x1[l+1], x1[l+2], x1[l+3]
		w0 := w[l*r : l*r+r][:r]
		w1, w2, w3 := w[(l+1)*r:][:r], w[(l+2)*r:][:r], w[(l+3)*r:][:r]
		for j := j0; j < r; j++ {
			c0, c1, c2, c3 := w0[j], w1[j], w2[j], w3[j]
			d0[j] += (float64(a0*c0) + float64(a1*c1)) + (float64(a2*c2) + float64(a3*c3))
			d1[j] += (float64(b0*c0) + float64(b1*c1)) + (float64(b2*c2) + float64(b3*c3))
		}
	}
}

// addSignedCols adds to the rows of ft (r x r), in their columns from c0
// on, the row x (r long), negated for elements with the sign bit, for each
// kept element (column<<1 | sign bit) of a ternary row, in order.
func addSignedCols(ft []float64, row []uint32, x []float64, c0 int) {
	r := len(x)
	x = x[c0:]
	// Two kept elements at a time share the loads of x.
	q := 0
	for ; q+2 <= len(row); q += 2 {
		j0, j1 := int(row[q]>>1)*r+c0, int(row[q+1]>>1)*r+c0
		s0, s1 := signs[row[q]&1], signs[row[q+1]&1]
		f0, f1 := ft[j0:j0+len(x)], ft[j1:j1+len(x)]
		for l, v := range x {
			f0[l] += float64(s0 * v)
			f1[l] += float64(s1 * v)
		}
	}
	if q < len(row) {
		j := int(row[q]>>1)*r + c0
		addScaled(ft[j:j+len(x)], signs[row[q]&1], x)
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
