package safetensors

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"
)

// MaxHeaderSize is the largest JSON header accepted, as in the reference
// implementation.
const MaxHeaderSize = 100_000_000

// metadataKey is the reserved header key holding the string->string metadata.
const metadataKey = "__metadata__"

// parseHeader validates the JSON header of a file whose data buffer holds
// dataLen bytes. The returned tensors are sorted by name; their Offset is
// relative to the data buffer.
func parseHeader(hdr []byte, dataLen int64) (map[string]string, []TensorInfo, error) {
	if !utf8.Valid(hdr) {
		return nil, nil, fmt.Errorf("%w: not valid UTF-8", ErrBadHeader)
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, fmt.Errorf("%w: does not start with '{'", ErrBadHeader)
	}
	t := newTokens(hdr, ErrBadHeader)
	if err := t.delim("header", '{'); err != nil {
		return nil, nil, err
	}
	var (
		meta    map[string]string
		tensors []TensorInfo
		seen    = make(map[string]struct{})
	)
	for t.dec.More() {
		key, err := t.str("key")
		if err != nil {
			return nil, nil, err
		}
		if _, dup := seen[key]; dup {
			return nil, nil, fmt.Errorf("%w: %s appears twice in the header", ErrDuplicate, quote(key))
		}
		seen[key] = struct{}{}
		if key == metadataKey {
			if meta, err = t.stringMap(metadataKey); err != nil {
				return nil, nil, err
			}
			continue
		}
		ti, err := readTensor(t, key, dataLen)
		if err != nil {
			return nil, nil, err
		}
		tensors = append(tensors, ti)
	}
	if err := t.delim("header", '}'); err != nil {
		return nil, nil, err
	}
	if err := t.end(hdr); err != nil {
		return nil, nil, err
	}
	if err := checkCoverage(tensors, dataLen); err != nil {
		return nil, nil, err
	}
	slices.SortFunc(tensors, func(a, b TensorInfo) int { return cmp.Compare(a.Name, b.Name) })
	return meta, tensors, nil
}

// readTensor consumes one tensor entry and checks it on its own.
func readTensor(t *tokens, name string, dataLen int64) (TensorInfo, error) {
	ti := TensorInfo{Name: name}
	what := "tensor " + quote(name)
	if err := t.delim(what, '{'); err != nil {
		return ti, err
	}
	var offsets []int64
	var haveDType, haveShape, haveOffsets bool
	for t.dec.More() {
		field, err := t.str(what + " field")
		if err != nil {
			return ti, err
		}
		var dup bool
		switch field {
		case "dtype":
			dup, haveDType = haveDType, true
			var s string
			if s, err = t.str(what + " dtype"); err == nil && DType(s).Size() == 0 {
				err = fmt.Errorf("%w: %s: unknown dtype %s", ErrDType, what, quote(s))
			}
			ti.DType = DType(s)
		case "shape":
			dup, haveShape = haveShape, true
			ti.Shape, err = t.ints(what+" shape", ErrShape)
			if ti.Shape == nil {
				ti.Shape = []int64{}
			}
		case "data_offsets":
			dup, haveOffsets = haveOffsets, true
			offsets, err = t.ints(what+" data_offsets", ErrOffsets)
		default:
			err = fmt.Errorf("%w: %s: unknown field %s", ErrBadHeader, what, quote(field))
		}
		if dup {
			return ti, fmt.Errorf("%w: %s: field %q appears twice", ErrDuplicate, what, field)
		}
		if err != nil {
			return ti, err
		}
	}
	if err := t.delim(what, '}'); err != nil {
		return ti, err
	}
	switch {
	case !haveDType:
		return ti, fmt.Errorf("%w: %s: no dtype", ErrBadHeader, what)
	case !haveShape:
		return ti, fmt.Errorf("%w: %s: no shape", ErrBadHeader, what)
	case !haveOffsets:
		return ti, fmt.Errorf("%w: %s: no data_offsets", ErrBadHeader, what)
	}
	size, err := byteSize(what, ti.DType, ti.Shape)
	if err != nil {
		return ti, err
	}
	if len(offsets) != 2 {
		return ti, fmt.Errorf("%w: %s: data_offsets has %d values, want [begin, end]", ErrOffsets, what, len(offsets))
	}
	begin, end := offsets[0], offsets[1]
	switch {
	case begin < 0 || begin > end:
		return ti, fmt.Errorf("%w: %s: data_offsets [%d, %d] not 0 <= begin <= end", ErrOffsets, what, begin, end)
	case end > dataLen:
		return ti, fmt.Errorf("%w: %s: data_offsets [%d, %d] beyond the %d-byte data buffer", ErrOffsets, what, begin, end, dataLen)
	case end-begin != size:
		return ti, fmt.Errorf("%w: %s: data_offsets [%d, %d] span %d bytes, shape %s of %s needs %d",
			ErrOffsets, what, begin, end, end-begin, fmtShape(ti.Shape), ti.DType, size)
	}
	ti.Offset, ti.Size = begin, size
	return ti, nil
}

// byteSize returns the data size of a tensor, failing with ErrShape on a
// negative dimension or an overflow. Like the reference implementation it
// multiplies left to right, so an overflow before a zero dimension is an error.
func byteSize(what string, dt DType, shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w: %s: negative dimension %d", ErrShape, what, d)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("%w: %s: element count of shape %s overflows int64", ErrShape, what, fmtShape(shape))
		}
		n *= d
	}
	es := int64(dt.Size())
	if es == 0 {
		return 0, fmt.Errorf("%w: %s: unknown dtype %s", ErrDType, what, quote(string(dt)))
	}
	if n > math.MaxInt64/es {
		return 0, fmt.Errorf("%w: %s: byte size of shape %s of %s overflows int64", ErrShape, what, fmtShape(shape), dt)
	}
	return n * es, nil
}

// checkCoverage checks that the tensors tile the data buffer exactly: no
// overlaps, no gaps, nothing left over. Offsets are relative to the buffer.
func checkCoverage(tensors []TensorInfo, dataLen int64) error {
	order := make([]int, len(tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int {
		a, b := tensors[i], tensors[j]
		return cmp.Or(cmp.Compare(a.Offset, b.Offset), cmp.Compare(a.Size, b.Size))
	})
	var pos int64
	var prev string
	for _, i := range order {
		ti := tensors[i]
		switch {
		case ti.Offset < pos:
			return fmt.Errorf("%w: tensor %s at [%d, %d] overlaps tensor %s ending at %d",
				ErrOffsets, quote(ti.Name), ti.Offset, ti.Offset+ti.Size, quote(prev), pos)
		case ti.Offset > pos:
			return fmt.Errorf("%w: gap of %d bytes at %d in the data buffer, before tensor %s",
				ErrOffsets, ti.Offset-pos, pos, quote(ti.Name))
		}
		pos += ti.Size
		prev = ti.Name
	}
	if pos != dataLen {
		return fmt.Errorf("%w: %d bytes after the last tensor are not covered (data buffer %d bytes)",
			ErrOffsets, dataLen-pos, dataLen)
	}
	return nil
}
