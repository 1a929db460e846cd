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

// bitSource supplies a bitReader's data in pieces: read fills p with the
// next bytes and returns fewer than len(p) only at the end of the data (or
// with an error).
type bitSource interface {
	read(p []byte) (int, error)
}

// bitReader reads bits LSB-first from a window of its data. Beyond the
// window's real bytes it needs readPad bytes of slack, so refills can load
// 8 bytes without bounds branches; a source refills the window as it is
// read, so data of any size is read in bounded memory.
type bitReader struct {
	data []byte // window: end real bytes, then at least readPad bytes
	end  int    // real bytes in the window
	safe int    // the fast refill may load 8 bytes at data[pos:] while pos <= safe
	pos  int
	buf  uint64
	n    uint
	base int64     // data bytes before the window
	src  bitSource // nil once the window holds the rest of the data
	err  error     // the source's error, if it failed
}

// newBitReader reads the end bytes of padded, which holds readPad zero
// bytes after them.
func newBitReader(padded []byte, end int) bitReader {
	return bitReader{data: padded, end: end, safe: end + 8}
}

// newStreamReader reads data from src through window, which must be larger
// than 2*readPad bytes.
func newStreamReader(window []byte, src bitSource) bitReader {
	r := bitReader{data: window, src: src, safe: -1}
	r.fill()
	return r
}

// refill tops the buffer up to at least 56 bits from the window. Called
// with fewer than 56 bits buffered, it reports false when the window has no
// 8 bytes to load; then more slides the window (it is kept apart so that
// refill stays small enough to inline in the decoding loops).
func (r *bitReader) refill() bool {
	if r.pos > r.safe {
		return false
	}
	r.buf |= binary.LittleEndian.Uint64(r.data[r.pos:]) << r.n
	r.pos += int(63-r.n) >> 3
	r.n |= 56
	return true
}

// more refills after refill failed: it moves the unread bytes to the front
// of the window and reads more from the source. It reports false once more
// bits were read than the data holds, which only corrupt input causes, or
// when the source failed.
func (r *bitReader) more() bool {
	if r.src != nil {
		keep := copy(r.data, r.data[r.pos:r.end])
		r.base += int64(r.pos)
		r.pos, r.end = 0, keep
		r.fill()
	}
	return r.refill()
}

// fill reads from the source into the window after end. At the end of the
// data it zeroes the slack, drops the source and lets loads run up to 8
// bytes past the end, as for newBitReader.
func (r *bitReader) fill() {
	room := r.data[r.end : len(r.data)-readPad]
	n, err := r.src.read(room)
	r.end += n
	if err != nil {
		r.err, r.src = err, nil
		r.safe = -1 // refuse every further load
		return
	}
	if n < len(room) {
		clear(r.data[r.end:])
		r.src, r.safe = nil, r.end+8
		return
	}
	r.safe = r.end - 8
}

// consumed is the number of bits read so far.
func (r *bitReader) consumed() int64 { return (r.base+int64(r.pos))*8 - int64(r.n) }

// overrun reports whether more bits were read than the data holds, total
// bytes.
func (r *bitReader) overrun(total int64) bool { return r.consumed() > total*8 }

// unary reads zeros up to a one bit and returns how many zeros; it gives up
// with ok=false past limit zeros or past the data.
func (r *bitReader) unary(limit uint64) (q uint64, ok bool) {
	for {
		if r.n < 56 && !r.refill() && !r.more() {
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
