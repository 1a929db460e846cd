package compress

import (
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

// intern replaces the copies of the few dtype and mode strings that JSON
// decoding makes for every tensor by shared ones: a header may hold a
// million tensors.
func (h *Header) intern() {
	for i := range h.Tensors {
		t := &h.Tensors[i]
		for _, s := range [...]string{"F64", "F32", "F16", "BF16", modeSparse, modeDense} {
			if t.DType == s {
				t.DType = s
			}
			if t.Mode == s {
				t.Mode = s
			}
		}
	}
}

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
		if err := checkCode(n, t.code(nil), t.Bytes); err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

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
