package compress

import (
	"encoding/binary"
	"math/bits"
)

// bitWriter appends bits LSB-first to a byte slice.
type bitWriter struct {
	out []byte
	acc uint64 // pending bits, fewer than 32 between calls
	n   uint
}

// write appends the low nb bits of v (nb <= 32).
func (w *bitWriter) write(v uint64, nb uint) {
	w.acc |= v << w.n
	w.n += nb
	if w.n >= 32 {
		w.out = binary.LittleEndian.AppendUint32(w.out, uint32(w.acc))
		w.acc >>= 32
		w.n -= 32
	}
}

// unary appends q zero bits then a one bit.
func (w *bitWriter) unary(q uint64) {
	for q >= 32 {
		w.write(0, 32)
		q -= 32
	}
	w.write(1<<q, uint(q)+1)
}

// flush pads the last byte with zeros and returns the bytes written.
func (w *bitWriter) flush() []byte {
	for w.n > 0 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		if w.n < 8 {
			w.n = 0
		} else {
			w.n -= 8
		}
	}
	return w.out
}

// readPad is the zero slack a bitReader needs after its data: loads of 8
// bytes may start up to 8 bytes past the end (the buffer then still holds
// unread real bits), so 16.
const readPad = 16

// bitReader reads bits LSB-first. data must have readPad zero bytes beyond
// end so refills can load 8 bytes without bounds branches.
type bitReader struct {
	data []byte
	end  int // length of the real data
	pos  int
	buf  uint64
	n    uint
}

func newBitReader(padded []byte, end int) bitReader {
	return bitReader{data: padded, end: end}
}

// refill tops the buffer up to at least 56 bits. Called with fewer than 56
// bits buffered, it reports false once more bits were read than the real
// data holds, which only corrupt input causes.
func (r *bitReader) refill() bool {
	if r.pos > r.end+8 {
		return false
	}
	r.buf |= binary.LittleEndian.Uint64(r.data[r.pos:]) << r.n
	r.pos += int(63-r.n) >> 3
	r.n |= 56
	return true
}

// consumed is the number of bits read so far.
func (r *bitReader) consumed() int { return r.pos*8 - int(r.n) }

// overrun reports whether more bits were read than the real data holds.
func (r *bitReader) overrun() bool { return r.consumed() > r.end*8 }

// unary reads zeros up to a one bit and returns how many zeros; it gives up
// with ok=false past limit zeros or past the data.
func (r *bitReader) unary(limit uint64) (q uint64, ok bool) {
	for {
		if r.n < 56 && !r.refill() {
			return 0, false
		}
		if r.buf != 0 {
			tz := uint(bits.TrailingZeros64(r.buf))
			if tz < r.n {
				q += uint64(tz)
				r.buf >>= tz + 1
				r.n -= tz + 1
				return q, q <= limit
			}
		}
		q += uint64(r.n)
		r.buf, r.n = 0, 0
		if q > limit {
			return q, false
		}
	}
}

// read returns nb bits (nb <= 32); the caller has refilled.
func (r *bitReader) read(nb uint) uint64 {
	v := r.buf & (1<<nb - 1)
	r.buf >>= nb
	r.n -= nb
	return v
}
