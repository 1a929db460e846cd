package compress

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Reader decodes a container as a stream, one tensor at a time, each in
// chunks of the caller's choosing: however large a tensor or its payload,
// it holds only a window of the payload (windowBytes) and the caller's
// chunk in memory.
//
// A tensor's checksum covers its payload, which is decoded as it is read:
// the checksum is checked when the tensor's last element is decoded, or
// when Next moves past a tensor not decoded to its end. A caller writing
// values out must therefore treat them as unverified until then (Expand
// writes under a temporary name).
type Reader struct {
	r        *bufio.Reader
	h        Header
	maxElems int64
	next     int // index of the next tensor
	cur      *TensorHeader
	window   []byte // the payload window of the bit reader

	// the current tensor
	dec      tensorDecoder
	started  bool  // dec is set up (by the first chunk)
	add      bool  // chunks are added to a base
	decoded  int64 // elements decoded
	left     int64 // payload bytes not yet read
	crc      uint32
	verified bool // the checksum was checked

	err  error // sticky: the container cannot be read further
	done bool
}

// windowBytes is the payload window of a Reader.
const windowBytes = 64 << 10

// ReaderOption configures NewReader.
type ReaderOption func(*Reader) error

// WithMaxElements bounds the total number of decoded elements (default
// 1<<34); a container declaring more is refused before any allocation.
func WithMaxElements(n int64) ReaderOption {
	return func(r *Reader) error {
		if n <= 0 {
			return fmt.Errorf("%w: max elements %d", ErrOption, n)
		}
		r.maxElems = n
		return nil
	}
}

// NewReader reads and validates the header.
func NewReader(r io.Reader, opts ...ReaderOption) (*Reader, error) {
	cr := &Reader{r: bufio.NewReaderSize(r, 64<<10), maxElems: 1 << 34}
	for _, o := range opts {
		if err := o(cr); err != nil {
			return nil, err
		}
	}
	var pre [16]byte
	if n, err := io.ReadFull(cr.r, pre[:]); err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, err
		}
		if m := min(n, len(Magic)); n == 0 || string(pre[:m]) != Magic[:m] {
			return nil, fmt.Errorf("%w: bad magic", ErrFormat)
		}
		return nil, fmt.Errorf("%w: preamble", ErrTruncated)
	}
	if string(pre[:8]) != Magic {
		return nil, fmt.Errorf("%w: bad magic", ErrFormat)
	}
	if v := binary.LittleEndian.Uint32(pre[8:]); v != Version {
		return nil, fmt.Errorf("%w: %d (this build reads %d)", ErrVersion, v, Version)
	}
	hlen := binary.LittleEndian.Uint32(pre[12:])
	if hlen > MaxHeaderBytes {
		return nil, fmt.Errorf("%w: header of %d bytes (max %d)", ErrLimit, hlen, MaxHeaderBytes)
	}
	if err := readHeader(cr.r, pre[:], hlen, &cr.h); err != nil {
		return nil, err
	}
	cr.h.intern()
	if err := cr.h.validate(cr.maxElems); err != nil {
		return nil, err
	}
	return cr, nil
}

// Header returns the container's header.
func (r *Reader) Header() *Header { return &r.h }

// Next moves to the next tensor and returns its header. It checks the
// checksum of the current tensor first if its chunks did not (reading the
// rest of its payload), and returns io.EOF after the last tensor once it
// has checked that nothing follows.
func (r *Reader) Next() (*TensorHeader, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.done {
		return nil, io.EOF
	}
	if r.cur != nil && !r.verified {
		if err := r.verify(); err != nil {
			return nil, r.fail(err)
		}
	}
	if r.next == len(r.h.Tensors) {
		r.done, r.cur = true, nil
		if _, err := r.r.ReadByte(); err != io.EOF {
			if err == nil {
				return nil, r.fail(ErrTrailing)
			}
			return nil, r.fail(err)
		}
		return nil, io.EOF
	}
	t := &r.h.Tensors[r.next]
	r.next++
	r.cur, r.started, r.decoded, r.left, r.crc, r.verified = t, false, 0, t.Bytes, 0, false
	return t, nil
}

// Remaining is the number of elements of the current tensor not yet
// decoded.
func (r *Reader) Remaining() int64 {
	if r.cur == nil {
		return 0
	}
	return r.cur.Elements() - r.decoded
}

// ReadValues decodes the next len(dst) elements of the current tensor
// into dst: the offset everywhere, offset ± scale at kept positions.
// len(dst) must not exceed Remaining. The chunk that decodes the last
// element also checks the tensor's checksum.
func (r *Reader) ReadValues(dst []float32) error { return r.chunk(dst, false) }

// AddValues adds ± scale at the kept positions of the next len(dst)
// elements of the current tensor to dst, which holds those elements of the
// base model's tensor; otherwise like ReadValues. A tensor is read with
// ReadValues or with AddValues, not both.
func (r *Reader) AddValues(dst []float32) error { return r.chunk(dst, true) }

// Values decodes the whole current tensor into dst (reused when large
// enough), in one chunk: it holds the whole tensor in memory; use
// ReadValues for bounded memory.
func (r *Reader) Values(dst []float32) ([]float32, error) {
	if r.cur == nil || r.started {
		return nil, fmt.Errorf("compress: Values called without a fresh current tensor")
	}
	dst = resize(dst, int(r.cur.Elements()))
	return dst, r.ReadValues(dst)
}

// AddTo adds ± scale at kept positions to dst, the whole base tensor.
func (r *Reader) AddTo(dst []float32) error {
	t := r.cur
	if t == nil || r.started {
		return fmt.Errorf("compress: AddTo called without a fresh current tensor")
	}
	if int64(len(dst)) != t.Elements() {
		return fmt.Errorf("%w: tensor %q has %d elements, buffer %d", ErrShape, t.Name, t.Elements(), len(dst))
	}
	return r.AddValues(dst)
}

func (r *Reader) chunk(dst []float32, add bool) error {
	if r.err != nil {
		return r.err
	}
	t := r.cur
	switch {
	case t == nil || r.verified && r.decoded == t.Elements():
		return fmt.Errorf("compress: no tensor left to decode")
	case int64(len(dst)) > t.Elements()-r.decoded:
		return fmt.Errorf("%w: tensor %q: %d elements asked, %d left", ErrShape, t.Name, len(dst), t.Elements()-r.decoded)
	case r.started && add != r.add:
		return fmt.Errorf("compress: tensor %q: ReadValues and AddValues mixed", t.Name)
	}
	if !r.started {
		if err := r.dec.init(newStreamReader(r.scratch(), r), t.Elements(), t.code(nil), t.Bytes, t.Offset, t.Scale, add); err != nil {
			return r.fail(fmt.Errorf("tensor %q: %w", t.Name, err))
		}
		r.started, r.add = true, add
	}
	if !add {
		if off := t.Offset; off == 0 {
			clear(dst)
		} else {
			for i := range dst {
				dst[i] = off
			}
		}
	}
	err := r.dec.decode(dst)
	r.decoded += int64(len(dst))
	if err == nil && r.decoded == t.Elements() {
		err = r.dec.finish()
	}
	if err != nil {
		return r.fail(r.decodeError(fmt.Errorf("tensor %q: %w", t.Name, err)))
	}
	if r.decoded == t.Elements() {
		if err := r.verify(); err != nil {
			return r.fail(err)
		}
	}
	return nil
}

// payload reads the whole payload of the current tensor, none of which
// was decoded, into buf (grown if too small) followed by readPad zero
// bytes, checks its checksum, and returns it; the tensor then counts as
// decoded. The caller bounds the payload size (a header may declare up to
// maxPayload of its tensor).
func (r *Reader) payload(buf []byte) ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	t := r.cur
	if t == nil || r.started {
		return nil, fmt.Errorf("compress: payload called without a fresh current tensor")
	}
	n := int(t.Bytes)
	if cap(buf) < n+readPad {
		buf = make([]byte, n+readPad)
	}
	buf = buf[:n+readPad]
	clear(buf[n:])
	if _, err := r.read(buf[:n]); err != nil {
		return nil, r.fail(err)
	}
	if err := r.verify(); err != nil {
		return nil, r.fail(err)
	}
	r.started, r.decoded = true, t.Elements()
	return buf, nil
}

// decodeError tells why a payload did not decode: the source failed (a
// truncated container), the payload was damaged (its checksum, read
// through to the end, does not match), or else the encoder wrote codes
// that contradict the header (err).
func (r *Reader) decodeError(err error) error {
	if r.dec.r.err != nil {
		return r.dec.r.err
	}
	if verr := r.verify(); verr != nil {
		return verr
	}
	return err
}

// read is the bit reader's source: the current payload, checksummed as it
// goes by. It fills p unless the payload ends first.
func (r *Reader) read(p []byte) (int, error) {
	n := int(min(int64(len(p)), r.left))
	if _, err := io.ReadFull(r.r, p[:n]); err != nil {
		return 0, r.readError(err)
	}
	r.crc = crc32.Update(r.crc, castagnoli, p[:n])
	r.left -= int64(n)
	return n, nil
}

// verify reads what is left of the current payload and its checksum, and
// compares them.
func (r *Reader) verify() error {
	t := r.cur
	buf := r.scratch() // no decoder reads the window any more
	for r.left > 0 {
		if _, err := r.read(buf[:min(r.left, int64(len(buf)))]); err != nil {
			return err
		}
	}
	var sum [4]byte
	if _, err := io.ReadFull(r.r, sum[:]); err != nil {
		return r.readError(err)
	}
	r.verified = true
	if r.crc != binary.LittleEndian.Uint32(sum[:]) {
		return fmt.Errorf("%w: tensor %q", ErrChecksum, t.Name)
	}
	return nil
}

func (r *Reader) readError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: tensor %q: %v", ErrTruncated, r.cur.Name, err)
	}
	return fmt.Errorf("tensor %q: %w", r.cur.Name, err)
}

// scratch returns the payload window, allocated on first use.
func (r *Reader) scratch() []byte {
	if r.window == nil {
		r.window = make([]byte, windowBytes+readPad)
	}
	return r.window
}

// fail makes err the Reader's answer to every later call.
func (r *Reader) fail(err error) error {
	r.err = err
	return err
}

func resize(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
