package safetensors

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
)

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int64 // empty for a scalar
	// Offset is the absolute file offset of the tensor's data.
	Offset int64
	// Size is the data size in bytes: NumElements() * DType.Size().
	Size int64
}

// NumElements returns the product of the dimensions (1 for a scalar). Parse and
// NewWriter guarantee it does not overflow for the tensors they accept.
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is a parsed safetensors file. Its methods may be called concurrently
// if the underlying io.ReaderAt allows it (an *os.File does).
type File struct {
	// Metadata is the header's "__metadata__" object; nil if absent.
	Metadata map[string]string
	// Tensors lists every tensor, sorted by Name. Do not modify it.
	Tensors []TensorInfo

	r         io.ReaderAt
	closer    io.Closer
	dataStart int64 // file offset of the data buffer
	size      int64
}

// Parse reads and validates the header of the safetensors file of the given
// size held by r. It reads only the header; tensor data is read on demand.
// Every rejection wraps one of the package's sentinel errors.
func Parse(r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, fmt.Errorf("%w: file of %d bytes has no 8-byte header length", ErrBadHeader, size)
	}
	var lenBuf [8]byte
	if _, err := readFull(r, lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: read header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header length %d exceeds the limit of %d", ErrHeaderTooLarge, n, MaxHeaderSize)
	}
	if n > uint64(size-8) {
		return nil, fmt.Errorf("%w: header length %d exceeds the %d bytes after it", ErrHeaderTooLarge, n, size-8)
	}
	hdr := make([]byte, n) // bounded by the checks above
	if _, err := readFull(r, hdr, 8); err != nil {
		return nil, fmt.Errorf("safetensors: read header: %w", err)
	}
	dataStart := 8 + int64(n)
	meta, tensors, err := parseHeader(hdr, size-dataStart)
	if err != nil {
		return nil, err
	}
	for i := range tensors {
		tensors[i].Offset += dataStart
	}
	return &File{Metadata: meta, Tensors: tensors, r: r, dataStart: dataStart, size: size}, nil
}

// Open opens and parses the named file; Close closes it.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		fh.Close()
		return nil, fmt.Errorf("safetensors: %s is not a regular file", path)
	}
	f, err := Parse(fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.closer = fh
	return f, nil
}

// Close closes the file opened by Open; for a File from Parse it does nothing.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// Lookup returns the tensor with the given name.
func (f *File) Lookup(name string) (TensorInfo, bool) {
	i, ok := slices.BinarySearchFunc(f.Tensors, name, func(t TensorInfo, name string) int {
		return cmp.Compare(t.Name, name)
	})
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// ReadRaw reads the little-endian bytes of t, which should come from
// f.Tensors or f.Lookup, into dst if its capacity suffices, else into a new
// slice, and returns them.
func (f *File) ReadRaw(t TensorInfo, dst []byte) ([]byte, error) {
	if err := f.check(t); err != nil {
		return nil, err
	}
	if int64(cap(dst)) >= t.Size {
		dst = dst[:t.Size]
	} else {
		dst = make([]byte, t.Size)
	}
	if _, err := readFull(f.r, dst, t.Offset); err != nil {
		return nil, fmt.Errorf("safetensors: read tensor %s: %w", quote(t.Name), err)
	}
	return dst, nil
}

// ReadFloat32 reads t, which must be F64, F32, F16 or BF16, converted to
// float32 (F64 rounds to nearest), into dst if its capacity suffices, else into
// a new slice, and returns the values.
func (f *File) ReadFloat32(t TensorInfo, dst []float32) ([]float32, error) {
	n, err := f.floatElements(t)
	if err != nil {
		return nil, err
	}
	if int64(cap(dst)) >= n {
		dst = dst[:n]
	} else {
		dst = make([]float32, n)
	}
	return dst, f.ReadFloat32At(t, 0, dst)
}

// ReadFloat32At reads the elements [start, start+len(dst)) of t, which must
// be F64, F32, F16 or BF16, converted to float32 into dst: a tensor of any
// size is read in the memory of the chunk the caller gives.
func (f *File) ReadFloat32At(t TensorInfo, start int64, dst []float32) error {
	n, err := f.floatElements(t)
	if err != nil {
		return err
	}
	if start < 0 || start > n || int64(len(dst)) > n-start {
		return fmt.Errorf("%w: tensor %s: elements [%d, %d) of %d", ErrOffsets, quote(t.Name), start, start+int64(len(dst)), n)
	}
	es := int64(t.DType.Size())
	if t.DType == F32 && nativeLE { // the file's bytes are the values
		if _, err := readFull(f.r, float32Bytes(dst), t.Offset+start*es); err != nil {
			return fmt.Errorf("safetensors: read tensor %s: %w", quote(t.Name), err)
		}
		return nil
	}
	buf := make([]byte, min(int64(len(dst))*es, chunkSize))
	per := int64(len(buf)) / es // elements per chunk
	for done, total := int64(0), int64(len(dst)); done < total; {
		k := min(per, total-done)
		b := buf[:k*es]
		if _, err := readFull(f.r, b, t.Offset+(start+done)*es); err != nil {
			return fmt.Errorf("safetensors: read tensor %s: %w", quote(t.Name), err)
		}
		decodeFloat32(dst[done:done+k], b, t.DType)
		done += k
	}
	return nil
}

// floatElements checks that t is a float tensor inside f and returns its
// element count.
func (f *File) floatElements(t TensorInfo) (int64, error) {
	if !t.DType.IsFloat() {
		return 0, fmt.Errorf("%w: tensor %s is %s, not a float type", ErrDType, quote(t.Name), quote(string(t.DType)))
	}
	if err := f.check(t); err != nil {
		return 0, err
	}
	es := int64(t.DType.Size())
	if t.Size%es != 0 {
		return 0, fmt.Errorf("%w: tensor %s: %d bytes is not a whole number of %s elements", ErrOffsets, quote(t.Name), t.Size, t.DType)
	}
	return t.Size / es, nil
}

// check verifies that t lies in f's data buffer.
func (f *File) check(t TensorInfo) error {
	if t.Size < 0 || t.Size > math.MaxInt || t.Offset < f.dataStart || t.Offset > f.size || t.Size > f.size-t.Offset {
		return fmt.Errorf("%w: tensor %s at %d, %d bytes, is outside the data buffer [%d, %d)",
			ErrOffsets, quote(t.Name), t.Offset, t.Size, f.dataStart, f.size)
	}
	return nil
}

// readFull reads len(b) bytes at off, accepting io.EOF with a full read.
func readFull(r io.ReaderAt, b []byte, off int64) (int, error) {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return n, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
