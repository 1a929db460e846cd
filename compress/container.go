package compress

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// Container layout (all integers little endian):
//
//	magic    8 bytes  "\x93CPEFT\r\n"
//	version  uint32   1
//	hlen     uint32   length of the compressed header
//	header   hlen bytes: the JSON Header, DEFLATE compressed (RFC 1951)
//	crc      uint32   CRC-32C of everything above
//	then for each tensor, in header order:
//	payload  Bytes bytes (see golomb.go)
//	crc      uint32   CRC-32C of the payload
const (
	Magic          = "\x93CPEFT\r\n"
	Version        = 1
	MaxHeaderBytes = 16 << 20
	MaxTensors     = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header describes a container: everything but the payloads.
type Header struct {
	PeftType string `json:"peft_type"` // LORA, IA3, ... or FULL for a fine-tuning residual
	// ConfigName and Config hold the adapter's (or model's) config file
	// verbatim, restored as is on decompression.
	ConfigName string            `json:"config_name,omitempty"`
	Config     string            `json:"config,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"` // safetensors __metadata__
	Density    float64           `json:"density"`
	Alpha      string            `json:"alpha"` // "auto" or the std multiplier
	Scope      string            `json:"scope"`
	// Base is the fingerprint of the base model tensors a residual was taken
	// against; decompression needs the same base.
	Base        string         `json:"base_fingerprint,omitempty"`
	SourceBytes int64          `json:"source_bytes,omitempty"` // size of the source safetensors
	Tensors     []TensorHeader `json:"tensors"`
}

// TensorHeader describes one tensor and its payload.
type TensorHeader struct {
	Name   string  `json:"name"`
	DType  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	Offset float32 `json:"offset,omitempty"` // added to every element when no base is used
	Scale  float64 `json:"scale"`            // kept elements are float32(offset ± scale)
	Kept   int64   `json:"kept"`             // nonzero kept elements
	Mode   string  `json:"mode"`
	M      uint32  `json:"m"` // Golomb parameter
	Bytes  int64   `json:"bytes"`
}

// Elements returns the tensor's element count.
func (t *TensorHeader) Elements() int64 { return numElements(t.Shape) }

func (t *TensorHeader) code(payload []byte) tensorCode {
	return tensorCode{Kept: t.Kept, Mode: t.Mode, M: t.M, Payload: payload}
}

// Write writes a container holding h (its Tensors replaced by those of
// coded) and the payloads. It returns the bytes written.
func Write(w io.Writer, h Header, coded []Coded) (int64, error) {
	h.Tensors = make([]TensorHeader, len(coded))
	for i := range coded {
		h.Tensors[i] = coded[i].TensorHeader
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return 0, fmt.Errorf("encode header: %w", err)
	}
	if len(hj) > MaxHeaderBytes {
		return 0, fmt.Errorf("%w: header of %d bytes", ErrLimit, len(hj))
	}
	if hj, err = deflate(hj); err != nil {
		return 0, err
	}
	cw := &countWriter{w: w}
	pre := make([]byte, 0, 16+len(hj)+4)
	pre = append(pre, Magic...)
	pre = binary.LittleEndian.AppendUint32(pre, Version)
	pre = binary.LittleEndian.AppendUint32(pre, uint32(len(hj)))
	pre = append(pre, hj...)
	pre = binary.LittleEndian.AppendUint32(pre, crc32.Checksum(pre, castagnoli))
	if _, err := cw.Write(pre); err != nil {
		return cw.n, err
	}
	var sum [4]byte
	for _, c := range coded {
		if _, err := cw.Write(c.Payload); err != nil {
			return cw.n, err
		}
		binary.LittleEndian.PutUint32(sum[:], crc32.Checksum(c.Payload, castagnoli))
		if _, err := cw.Write(sum[:]); err != nil {
			return cw.n, err
		}
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// HeaderSize is the number of container bytes that are not payload: the
// fixed preamble, the JSON header and the checksums.
func HeaderSize(fileSize int64, h *Header) int64 {
	var p int64
	for i := range h.Tensors {
		p += h.Tensors[i].Bytes
	}
	return fileSize - p
}

// Reader decodes a container as a stream, one tensor at a time: it holds
// at most one payload in memory besides the caller's output buffer.
type Reader struct {
	r        *bufio.Reader
	h        Header
	maxElems int64
	next     int // index of the next tensor
	cur      *TensorHeader
	buf      []byte // current payload + readPad zero bytes
	done     bool
}

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
	hj := make([]byte, int(hlen)+4)
	if _, err := io.ReadFull(cr.r, hj); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrTruncated, err)
	}
	crc := crc32.Update(crc32.Checksum(pre[:], castagnoli), castagnoli, hj[:hlen])
	if crc != binary.LittleEndian.Uint32(hj[hlen:]) {
		return nil, fmt.Errorf("%w: header", ErrChecksum)
	}
	hj, err := inflate(hj[:hlen], MaxHeaderBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrCorrupt, err)
	}
	if err := json.Unmarshal(hj, &cr.h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if err := cr.h.validate(cr.maxElems); err != nil {
		return nil, err
	}
	return cr, nil
}

// Header returns the container's header.
func (r *Reader) Header() *Header { return &r.h }

// validate checks every field a decoder relies on.
func (h *Header) validate(maxElems int64) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	if !(h.Density > 0 && h.Density <= 1) {
		return bad("density %v", h.Density)
	}
	if h.Scope != ScopeGlobal && h.Scope != ScopeTensor {
		return bad("scope %q", h.Scope)
	}
	if err := h.validateStrings(); err != nil {
		return err
	}
	if len(h.Tensors) > MaxTensors {
		return fmt.Errorf("%w: %d tensors (max %d)", ErrLimit, len(h.Tensors), MaxTensors)
	}
	var total int64
	for i := range h.Tensors {
		t := &h.Tensors[i]
		if t.Name == "" || (i > 0 && h.Tensors[i-1].Name >= t.Name) {
			return bad("tensor %d: name %q empty or out of order", i, t.Name)
		}
		if !displayable(t.Name) {
			return bad("tensor %d: name %q holds control or format characters", i, t.Name)
		}
		if dtypeSize(t.DType) == 0 {
			return bad("tensor %q: dtype %q", t.Name, t.DType)
		}
		n := t.Elements()
		if n < 0 || n > MaxTensorElements {
			return bad("tensor %q: shape %v", t.Name, t.Shape)
		}
		total += n
		if total > maxElems {
			return fmt.Errorf("%w: more than %d elements", ErrLimit, maxElems)
		}
		if t.Kept < 0 || t.Kept > n || (t.Mode != modeSparse && t.Mode != modeDense) || t.M < 1 || t.M > 1<<30 {
			return bad("tensor %q: code kept=%d mode=%q m=%d", t.Name, t.Kept, t.Mode, t.M)
		}
		if !finite(t.Scale) || !finite(float64(t.Offset)) {
			return bad("tensor %q: scale %v offset %v", t.Name, t.Scale, t.Offset)
		}
		if t.Bytes < 0 || t.Bytes > maxPayload(n, t.code(nil)) {
			return bad("tensor %q: payload of %d bytes", t.Name, t.Bytes)
		}
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// Next reads the next tensor's payload and verifies its checksum. It returns
// io.EOF after the last tensor once it has checked that nothing follows.
func (r *Reader) Next() (*TensorHeader, error) {
	if r.done {
		return nil, io.EOF
	}
	if r.next == len(r.h.Tensors) {
		r.done, r.cur = true, nil
		if _, err := r.r.ReadByte(); err != io.EOF {
			if err == nil {
				return nil, ErrTrailing
			}
			return nil, err
		}
		return nil, io.EOF
	}
	t := &r.h.Tensors[r.next]
	r.next++
	need := int(t.Bytes) + readPad + 4
	if cap(r.buf) < need {
		r.buf = make([]byte, need)
	}
	r.buf = r.buf[:need]
	body := r.buf[:t.Bytes+4]
	if _, err := io.ReadFull(r.r, body); err != nil {
		return nil, fmt.Errorf("%w: tensor %q: %v", ErrTruncated, t.Name, err)
	}
	if crc32.Checksum(body[:t.Bytes], castagnoli) != binary.LittleEndian.Uint32(body[t.Bytes:]) {
		return nil, fmt.Errorf("%w: tensor %q", ErrChecksum, t.Name)
	}
	clear(r.buf[t.Bytes:])
	r.cur = t
	return t, nil
}

// Values decodes the current tensor into dst (reused when large enough):
// offset everywhere, offset ± scale at kept positions.
func (r *Reader) Values(dst []float32) ([]float32, error) {
	if r.cur == nil {
		return nil, fmt.Errorf("compress: Values called without a current tensor")
	}
	dst = resize(dst, int(r.cur.Elements()))
	if off := r.cur.Offset; off == 0 {
		clear(dst)
	} else {
		for i := range dst {
			dst[i] = off
		}
	}
	return dst, r.decode(dst, false)
}

// AddTo adds ± scale to dst (the base model's tensor) at kept positions.
func (r *Reader) AddTo(dst []float32) error {
	t := r.cur
	if t == nil {
		return fmt.Errorf("compress: AddTo called without a current tensor")
	}
	if int64(len(dst)) != t.Elements() {
		return fmt.Errorf("%w: tensor %q has %d elements, buffer %d", ErrShape, t.Name, t.Elements(), len(dst))
	}
	return r.decode(dst, true)
}

func (r *Reader) decode(dst []float32, add bool) error {
	t := r.cur
	if err := decodeTensor(dst, t.code(r.buf[:t.Bytes]), r.buf, t.Offset, t.Scale, add); err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	return nil
}

func resize(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// dtypeSize is the element size of the float dtypes the codec restores.
func dtypeSize(dt string) int {
	switch dt {
	case "F64":
		return 8
	case "F32":
		return 4
	case "F16", "BF16":
		return 2
	}
	return 0
}

// Verify reads a whole container, checking the header and every section's
// checksum without decoding the payloads, and returns the header.
func Verify(r io.Reader, opts ...ReaderOption) (*Header, error) {
	cr, err := NewReader(r, opts...)
	if err != nil {
		return nil, err
	}
	for {
		if _, err := cr.Next(); errors.Is(err, io.EOF) {
			return cr.Header(), nil
		} else if err != nil {
			return nil, err
		}
	}
}
