package compress

import (
	"fmt"
)

// tensorDecoder decodes one tensor's payload a chunk of elements at a time,
// so a tensor of any size is decoded in the memory of one chunk. Call
// decode for consecutive chunks covering the tensor, then finish. It never
// writes outside the chunk it is given and fails on any inconsistency with
// the declared counts.
type tensorDecoder struct {
	r     bitReader
	g     golomb
	dense bool
	n     int64 // elements
	bytes int64 // payload bytes
	pos   int64 // first element of the next chunk
	left  int64 // sparse: kept elements to decode; dense: dropped elements
	k     kept

	// sparse: the first position after the last decoded kept element, and
	// that element when it lies past the current chunk
	next, pend int64 // pend < 0: none
	psign      uint64

	// dense: kept elements to read before the next dropped element, or up
	// to the end once no dropped element is left; drop: a dropped element
	// follows them
	run  int64
	drop bool
}

// init sets d up for a tensor of n elements coded as tc (whose Payload is
// ignored: the payload comes from r). With add false, a kept element
// becomes float32(offset ± scale); with add true (the chunk holds a base
// tensor) it becomes float32(base ± scale), the sum taken in float64 as the
// reference does.
func (d *tensorDecoder) init(r bitReader, n int64, tc tensorCode, payloadBytes int64, offset float32, scale float64, add bool) error {
	if tc.M == 0 || tc.Kept < 0 || tc.Kept > n || (tc.Mode != modeSparse && tc.Mode != modeDense) {
		return fmt.Errorf("%w: bad tensor code parameters", ErrCorrupt)
	}
	*d = tensorDecoder{r: r, g: newGolomb(tc.M), dense: tc.Mode == modeDense, n: n, bytes: payloadBytes, left: tc.Kept, pend: -1,
		k: kept{add: add, set: [2]float32{float32(float64(offset) + scale), float32(float64(offset) - scale)}, delta: [2]float64{scale, -scale}}}
	if d.dense {
		d.left = n - tc.Kept
	}
	return nil
}

// decode writes the kept elements of the next len(dst) elements into dst,
// which the caller filled with the offset (or the base); len(dst) must not
// exceed the elements left.
func (d *tensorDecoder) decode(dst []float32) error {
	if d.dense {
		return d.decodeDense(dst)
	}
	return d.decodeSparse(dst)
}

// decodeSparse and decodeDense work on local copies of the decoder's state
// (the compiler keeps them in registers) and store them back on return.

func (d *tensorDecoder) decodeSparse(dst []float32) (err error) {
	start := d.pos
	end := start + int64(len(dst))
	d.pos = end
	if d.pend >= 0 {
		if d.pend >= end {
			return nil
		}
		d.k.put(dst, d.pend-start, d.psign)
		d.pend = -1
	}
	r, g, k, left, next, n := d.r, d.g, d.k, d.left, d.next, d.n
	for ; left > 0; left-- {
		gap, sign, ok := g.decodeShort(&r, uint64(n-next))
		if !ok { // a long code, the end of the window, or corrupt: the careful way
			gap, ok = g.decode(&r, uint64(n-next))
			if !ok || r.n < 1 && !r.refill() && !r.more() {
				err = fmt.Errorf("%w: bad gap code", ErrCorrupt)
				break
			}
			sign = r.read(1)
		}
		p := next + int64(gap)
		if p >= n {
			err = fmt.Errorf("%w: position past tensor end", ErrCorrupt)
			break
		}
		next = p + 1
		if p >= end {
			d.pend, d.psign = p, sign
			left--
			break
		}
		k.put(dst, p-start, sign)
	}
	d.r, d.left, d.next = r, left, next
	return err
}

func (d *tensorDecoder) decodeDense(dst []float32) (err error) {
	start := d.pos
	end := start + int64(len(dst))
	d.pos = end
	r, g, k, pos, run, drop, left := d.r, d.g, d.k, start, d.run, d.drop, d.left
loop:
	for pos < end {
		switch {
		case run > 0:
			m := min(run, end-pos)
			if !readSigns(&r, dst[pos-start:pos-start+m], &k) {
				err = fmt.Errorf("%w: signs past payload end", ErrCorrupt)
				break loop
			}
			pos += m
			run -= m
		case drop: // the dropped element keeps the offset (or base)
			pos++
			drop = false
		case left > 0:
			v, ok := g.decode(&r, uint64(d.n-pos))
			if !ok || pos+int64(v) >= d.n {
				err = fmt.Errorf("%w: bad run code", ErrCorrupt)
				break loop
			}
			run, drop = int64(v), true
			left--
		default: // after the last dropped element every element is kept
			run = d.n - pos
		}
	}
	d.r, d.run, d.drop, d.left = r, run, drop, left
	return err
}

// finish checks, once every element was decoded, that the payload held
// exactly the codes of the declared counts.
func (d *tensorDecoder) finish() error {
	switch {
	case d.pos != d.n:
		return fmt.Errorf("%w: %d of %d elements decoded", ErrCorrupt, d.pos, d.n)
	case d.left != 0 || d.pend >= 0 || d.run != 0 || d.drop:
		return fmt.Errorf("%w: codes left after the last element", ErrCorrupt)
	case d.r.overrun(d.bytes):
		return fmt.Errorf("%w: payload overrun", ErrCorrupt)
	case (d.r.consumed()+7)/8 != d.bytes:
		return fmt.Errorf("%w: payload has %d unused bytes", ErrCorrupt, d.bytes-(d.r.consumed()+7)/8)
	}
	return nil
}

func readSigns(r *bitReader, dst []float32, k *kept) bool {
	for i := range dst {
		if r.n == 0 && !r.refill() && !r.more() {
			return false
		}
		k.put(dst, int64(i), r.read(1))
	}
	return true
}

// kept writes one kept element given its sign bit.
type kept struct {
	add   bool
	set   [2]float32 // offset + scale, offset - scale
	delta [2]float64 // +scale, -scale
}

func (k *kept) put(dst []float32, i int64, sign uint64) {
	if k.add {
		dst[i] = float32(float64(dst[i]) + k.delta[sign&1])
	} else {
		dst[i] = k.set[sign&1]
	}
}

// checkCode checks a tensor's code against what encodeTensor writes:
// sparse mode exactly when at most half the elements are kept, and a
// payload between the shortest and the longest the counts allow (each
// Golomb code takes at least max(b, 1) bits, b = ceil(log2 m); a kept
// element also takes its sign bit).
//
// The kept count is not checked against the density, because no count is
// inconsistent with it. For a selection scope of N elements (the whole
// container in scope global, each tensor in scope tensor) and
// k = floor(N*d), the encoder keeps the nonzero elements with
// |x| >= t, t the (N-k)-th smallest |x| (select.go): k+1 of them when
// t > 0, up to N with ties at t; and when t = 0 (at least N-k zeros) only
// the nonzero ones, 0 to k. Every count from 0 to N is what some input
// gives; an IA3 offset changes nothing (it is added to every element). So
// an all-zero tensor of any size has kept 0 and an empty payload: the
// output limits of Expand, not the codes, bound what a container expands
// to.
func checkCode(n int64, tc tensorCode, bytes int64) error {
	if (tc.Mode == modeDense) != (tc.Kept*2 > n) {
		return fmt.Errorf("%w: %s mode with %d of %d elements kept (the encoder codes the smaller side)", ErrCorrupt, tc.Mode, tc.Kept, n)
	}
	if lo, hi := minPayload(n, tc), maxPayload(n, tc); bytes < lo || bytes > hi {
		return fmt.Errorf("%w: payload of %d bytes for %d of %d elements kept (%d to %d possible)", ErrCorrupt, bytes, tc.Kept, n, lo, hi)
	}
	return nil
}

// minPayload is the shortest payload the counts of tc allow.
func minPayload(n int64, tc tensorCode) int64 {
	code := max(int64(newGolomb(tc.M).b), 1)
	bits := tc.Kept * (code + 1) // sparse: a code and a sign per kept element
	if tc.Mode == modeDense {
		bits = (n-tc.Kept)*code + tc.Kept // a code per dropped element, a sign per kept one
	}
	return (bits + 7) / 8
}

// maxPayload bounds the payload size a valid encoder can produce for a
// tensor of n elements with the given code, so a decoder can refuse to
// allocate more.
func maxPayload(n int64, tc tensorCode) int64 {
	g := newGolomb(tc.M)
	coded := tc.Kept
	if tc.Mode == modeDense {
		coded = n - tc.Kept
	}
	bitsN := n/int64(tc.M) + coded*(int64(g.b)+1) + n + 64
	return bitsN/8 + 8
}
