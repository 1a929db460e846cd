package safetensors

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
)

// Writer streams a safetensors file: NewWriter writes the header, then the
// tensors' data is appended in order with WriteRaw or WriteFloat32, and Close
// checks that every tensor is complete. A Writer is not safe for concurrent use.
type Writer struct {
	w       io.Writer
	tensors []TensorInfo // Offset relative to the data buffer
	cur     int          // index of the tensor being written
	left    int64        // bytes still due for tensors[cur]
	buf     []byte       // conversion scratch
	err     error        // sticky write error
	closed  bool
}

// NewWriter validates the tensors, lays them out contiguously in the given
// order, and writes the header to w: NewPlan, then Plan.NewWriter.
func NewWriter(w io.Writer, metadata map[string]string, tensors []TensorInfo) (*Writer, error) {
	ts := make([]TensorInfo, len(tensors))
	for i, t := range tensors {
		ts[i] = TensorInfo{Name: t.Name, DType: t.DType, Shape: slices.Clone(t.Shape)}
	}
	p, err := NewPlan(metadata, ts)
	if err != nil {
		return nil, err
	}
	return p.NewWriter(w)
}

// Plan is a safetensors file laid out but not yet written, so that its
// size can be checked before anything is. Only Name, DType and Shape of
// each TensorInfo are used. Metadata, if non-nil, is written as
// "__metadata__". The header is measured, not built: a Plan's memory is
// its tensor list.
type Plan struct {
	metadata  map[string]string
	tensors   []TensorInfo // Offset relative to the data buffer
	headerLen int
	dataLen   int64
}

// NewPlan validates the tensors and metadata and lays the tensors out
// contiguously in the given order. It keeps tensors, setting their Offset
// (relative to the data buffer) and Size: the caller must not change the
// slice or its shapes afterwards.
func NewPlan(metadata map[string]string, tensors []TensorInfo) (*Plan, error) {
	data, err := layout(metadata, tensors)
	if err != nil {
		return nil, err
	}
	var c countingWriter
	encodeHeader(&c, metadata, tensors)
	if c.n > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header of %d bytes exceeds the limit of %d", ErrHeaderTooLarge, c.n, MaxHeaderSize)
	}
	if data > math.MaxInt64-8-int64(c.n) {
		return nil, fmt.Errorf("%w: file size overflows int64", ErrShape)
	}
	return &Plan{metadata: metadata, tensors: tensors, headerLen: c.n, dataLen: data}, nil
}

// Tensors lists the planned tensors, Offset relative to the data buffer.
// Do not modify it.
func (p *Plan) Tensors() []TensorInfo { return p.tensors }

// Size is the size of the file the plan's Writer writes.
func (p *Plan) Size() int64 { return 8 + int64(p.headerLen) + p.dataLen }

// NewWriter writes the header to w, rendered through a small buffer, and
// returns the Writer of the tensors' data.
func (p *Plan) NewWriter(w io.Writer) (*Writer, error) {
	bw := &lenWriter{Writer: bufio.NewWriterSize(w, 64<<10)}
	bw.Write(binary.LittleEndian.AppendUint64(nil, uint64(p.headerLen)))
	bw.n = 0 // Len counts the JSON, for the padding
	encodeHeader(bw, p.metadata, p.tensors)
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("safetensors: write header: %w", err)
	}
	wr := &Writer{w: w, tensors: p.tensors}
	if len(p.tensors) > 0 {
		wr.left = p.tensors[0].Size
	}
	wr.skipEmpty()
	return wr, nil
}

// lenWriter is a bufio.Writer that counts what it is given (its errors
// are sticky and reported by Flush).
type lenWriter struct {
	*bufio.Writer
	n int
}

func (l *lenWriter) Write(p []byte) (int, error) {
	l.n += len(p)
	return l.Writer.Write(p)
}

func (l *lenWriter) WriteByte(b byte) error {
	l.n++
	return l.Writer.WriteByte(b)
}

func (l *lenWriter) WriteString(s string) (int, error) {
	l.n += len(s)
	return l.Writer.WriteString(s)
}

func (l *lenWriter) Len() int { return l.n }

// layout validates the tensors and metadata, sets each tensor's Offset
// (relative to the data buffer) and Size, and returns the data size.
func layout(metadata map[string]string, ts []TensorInfo) (int64, error) {
	var seen map[string]struct{} // only when the names are not in increasing order
	if !slices.IsSortedFunc(ts, func(a, b TensorInfo) int { return cmp.Compare(a.Name, b.Name) }) {
		seen = make(map[string]struct{}, len(ts))
	}
	var off int64
	for i := range ts {
		t := &ts[i]
		what := func() string { return "tensor " + quote(t.Name) } // for errors only: a plan may hold a million tensors
		switch {
		case t.Name == metadataKey:
			return 0, fmt.Errorf("%w: %s is reserved", ErrBadHeader, what())
		case !utf8.ValidString(t.Name):
			return 0, fmt.Errorf("%w: %s: name is not valid UTF-8", ErrBadHeader, what())
		}
		if seen != nil {
			if _, dup := seen[t.Name]; dup {
				return 0, fmt.Errorf("%w: %s appears twice", ErrDuplicate, what())
			}
			seen[t.Name] = struct{}{}
		} else if i > 0 && ts[i-1].Name == t.Name {
			return 0, fmt.Errorf("%w: %s appears twice", ErrDuplicate, what())
		}
		size, err := byteSize("", t.DType, t.Shape)
		if err != nil {
			_, err = byteSize(what(), t.DType, t.Shape) // again, to name the tensor
			return 0, err
		}
		if off > math.MaxInt64-size {
			return 0, fmt.Errorf("%w: %s: total data size overflows int64", ErrShape, what())
		}
		t.Offset, t.Size = off, size
		off += size
	}
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return 0, fmt.Errorf("%w: metadata %s: not valid UTF-8", ErrBadHeader, quote(k))
		}
	}
	return off, nil
}

// headerWriter is where encodeHeader renders: a bytes.Buffer, or a
// countingWriter that only measures.
type headerWriter interface {
	io.Writer
	io.ByteWriter
	io.StringWriter
	Len() int
}

// countingWriter counts the bytes written to it.
type countingWriter struct{ n int }

func (c *countingWriter) Write(p []byte) (int, error)       { c.n += len(p); return len(p), nil }
func (c *countingWriter) WriteByte(byte) error              { c.n++; return nil }
func (c *countingWriter) WriteString(s string) (int, error) { c.n += len(s); return len(s), nil }
func (c *countingWriter) Len() int                          { return c.n }

// encodeHeader renders the JSON header, padded with spaces to a multiple of 8
// bytes so that the data buffer starts 8-byte aligned.
func encodeHeader(b headerWriter, metadata map[string]string, ts []TensorInfo) {
	sep := func() {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
	}
	b.WriteByte('{')
	if metadata != nil {
		writeString(b, metadataKey)
		b.WriteString(":{")
		for i, k := range slices.Sorted(maps.Keys(metadata)) {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			writeString(b, metadata[k])
		}
		b.WriteByte('}')
	}
	num := make([]byte, 0, 24)
	for _, t := range ts {
		sep()
		writeString(b, t.Name)
		b.WriteString(`:{"dtype":`)
		writeString(b, string(t.DType))
		b.WriteString(`,"shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(strconv.AppendInt(num[:0], d, 10))
		}
		b.WriteString(`],"data_offsets":[`)
		b.Write(strconv.AppendInt(num[:0], t.Offset, 10))
		b.WriteByte(',')
		b.Write(strconv.AppendInt(num[:0], t.Offset+t.Size, 10))
		b.WriteString(`]}`)
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
}

// writeString writes s as a JSON string; s must be valid UTF-8.
func writeString(b headerWriter, s string) {
	if plainJSON(s) { // as json.Marshal writes it, without its allocations
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
		return
	}
	e := stringEncoders.Get().(*stringEncoder)
	e.buf.Reset()
	_ = e.enc.Encode(s) // as json.Marshal, plus a newline; cannot fail for a string
	b.Write(e.buf.Bytes()[:e.buf.Len()-1])
	stringEncoders.Put(e)
}

// plainJSON reports whether json.Marshal writes s between quotes as it is:
// printable ASCII without a quote, a backslash or the <, > and & it
// escapes for HTML.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// stringEncoder encodes strings into a reused buffer.
type stringEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var stringEncoders = sync.Pool{New: func() any {
	e := &stringEncoder{}
	e.enc = json.NewEncoder(&e.buf)
	return e
}}

// WriteRaw appends little-endian bytes to the current tensor. A tensor may be
// written by several calls; once complete, the next call starts the next
// tensor. Data beyond the current tensor's remaining size is rejected with
// ErrOverrun and nothing is written.
func (w *Writer) WriteRaw(data []byte) error {
	if err := w.ready(int64(len(data)), 1); err != nil {
		return err
	}
	return w.write(data)
}

// WriteFloat32 converts src to the current tensor's dtype (F64, F32, or F16
// and BF16 rounding to nearest even) and appends it like WriteRaw.
func (w *Writer) WriteFloat32(src []float32) error {
	if err := w.ready(0, 1); err != nil || len(src) == 0 {
		return err
	}
	es := 1
	if w.cur < len(w.tensors) {
		t := w.tensors[w.cur]
		if !t.DType.IsFloat() {
			return fmt.Errorf("%w: tensor %s is %s, not a float type", ErrDType, quote(t.Name), t.DType)
		}
		es = t.DType.Size()
	}
	if err := w.ready(int64(len(src)), int64(es)); err != nil {
		return err
	}
	dt := w.tensors[w.cur].DType
	if dt == F32 && nativeLE { // the values are the file's bytes
		return w.write(float32Bytes(src))
	}
	if w.buf == nil {
		w.buf = make([]byte, chunkSize)
	}
	per := chunkSize / es
	for len(src) > 0 {
		k := min(per, len(src))
		b := w.buf[:k*es]
		encodeFloat32(b, src[:k], dt)
		if err := w.write(b); err != nil {
			return err
		}
		src = src[k:]
	}
	return nil
}

// ready checks that n elements of es bytes may be appended now.
func (w *Writer) ready(n, es int64) error {
	switch {
	case w.closed:
		return ErrClosed
	case w.err != nil:
		return w.err
	case n == 0:
		return nil
	case w.cur >= len(w.tensors):
		return fmt.Errorf("%w: every tensor is already complete", ErrOverrun)
	case n > w.left/es:
		t := w.tensors[w.cur]
		return fmt.Errorf("%w: tensor %s: %d more bytes, only %d left of %d",
			ErrOverrun, quote(t.Name), n*es, w.left, t.Size)
	}
	return nil
}

// write appends b, which ready has checked, and moves past completed tensors.
func (w *Writer) write(b []byte) error {
	if _, err := w.w.Write(b); err != nil {
		w.err = fmt.Errorf("safetensors: write tensor %s: %w", quote(w.tensors[w.cur].Name), err)
		return w.err
	}
	w.left -= int64(len(b))
	w.skipEmpty()
	return nil
}

// skipEmpty advances cur past complete tensors.
func (w *Writer) skipEmpty() {
	for w.cur < len(w.tensors) && w.left == 0 {
		w.cur++
		if w.cur < len(w.tensors) {
			w.left = w.tensors[w.cur].Size
		}
	}
}

// Close reports an error unless every tensor was written completely. It does
// not close the underlying writer. Later writes fail with ErrClosed.
func (w *Writer) Close() error {
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if w.cur < len(w.tensors) {
		t := w.tensors[w.cur]
		return fmt.Errorf("%w: tensor %s has %d of %d bytes, %d tensors not started",
			ErrIncomplete, quote(t.Name), t.Size-w.left, t.Size, len(w.tensors)-w.cur-1)
	}
	return nil
}
