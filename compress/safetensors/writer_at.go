package safetensors

import (
	"fmt"
	"io"
)

// WriterAt writes a planned file by position: the header at once, then
// any tensor's elements at any time, from any goroutine, so that tensors
// can be converted and written in parallel. The bytes are those a Writer
// writes in order, whatever order the elements come in; the caller makes
// sure every element is written once.
type WriterAt struct {
	w    io.WriterAt
	p    *Plan
	data int64 // file offset of the data buffer
}

// NewWriterAt writes the header at offset 0 of w (through a small
// buffer) and returns the WriterAt of the tensors' data. w is usually an
// *os.File, whose WriteAt may be called concurrently.
func (p *Plan) NewWriterAt(w io.WriterAt) (*WriterAt, error) {
	if _, err := p.NewWriter(io.NewOffsetWriter(w, 0)); err != nil {
		return nil, err
	}
	return &WriterAt{w: w, p: p, data: 8 + int64(p.headerLen)}, nil
}

// Chunk is part of a tensor in the file's bytes, to be written at Off.
type Chunk struct {
	Off  int64
	Data []byte
	name string // of the tensor, for errors
}

// Convert converts src to the dtype of tensor i of the plan (as
// Writer.WriteFloat32 does), as the tensor's elements
// [start, start+len(src)). The chunk's Data is src's own memory for F32
// (on a little-endian machine) and buf otherwise, grown when too small
// and returned for reuse: both must stay untouched until the chunk is
// written. It is safe for concurrent use.
func (w *WriterAt) Convert(i int, start int64, src []float32, buf []byte) (Chunk, []byte, error) {
	if i < 0 || i >= len(w.p.tensors) {
		return Chunk{}, buf, fmt.Errorf("%w: tensor %d of %d", ErrOverrun, i, len(w.p.tensors))
	}
	t := w.p.tensors[i]
	if !t.DType.IsFloat() {
		return Chunk{}, buf, fmt.Errorf("%w: tensor %s is %s, not a float type", ErrDType, quote(t.Name), t.DType)
	}
	es := int64(t.DType.Size())
	if n := t.Size / es; start < 0 || start > n || int64(len(src)) > n-start {
		return Chunk{}, buf, fmt.Errorf("%w: tensor %s: elements [%d, %d) of %d", ErrOverrun, quote(t.Name), start, start+int64(len(src)), n)
	}
	c := Chunk{Off: w.data + t.Offset + start*es, name: t.Name}
	if t.DType == F32 && nativeLE {
		c.Data = float32Bytes(src) // already the file's bytes
		return c, buf, nil
	}
	if need := len(src) * int(es); cap(buf) < need {
		buf = make([]byte, need)
	}
	c.Data = buf[:len(src)*int(es)]
	encodeFloat32(c.Data, src, t.DType)
	return c, buf, nil
}

// Write writes a chunk from Convert. It may be called concurrently, but
// writes to one file are serialized by the kernel: a single writing
// goroutine does as well.
func (w *WriterAt) Write(c Chunk) error {
	if _, err := w.w.WriteAt(c.Data, c.Off); err != nil {
		return fmt.Errorf("safetensors: write tensor %s: %w", quote(c.name), err)
	}
	return nil
}
