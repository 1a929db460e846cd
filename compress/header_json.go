package compress

import (
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// The header is read as a stream: its compressed bytes are checksummed and
// inflated as they go by, and the JSON is decoded tensor by tensor, so
// neither document is held whole. A header of the maximum size (16 MiB of
// JSON, ~170,000 tensors) then costs the decoded Header and little more.

// readHeader reads the header of hlen compressed bytes from r, then its
// checksum, which also covers pre. It reports a truncated container first,
// then a checksum mismatch, then a header that does not decode.
func readHeader(r io.Reader, pre []byte, hlen uint32, h *Header) error {
	cr := &crcReader{r: io.LimitReader(r, int64(hlen)), crc: crc32.Checksum(pre, castagnoli)}
	fr := flate.NewReader(cr)
	derr := decodeHeader(&capReader{r: fr, left: MaxHeaderBytes}, h)
	fr.Close()
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return err
	}
	var sum [4]byte
	if cr.n < int64(hlen) {
		return fmt.Errorf("%w: header", ErrTruncated)
	}
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: header checksum", ErrTruncated)
		}
		return err
	}
	switch {
	case cr.crc != binary.LittleEndian.Uint32(sum[:]):
		return fmt.Errorf("%w: header", ErrChecksum)
	case errors.Is(derr, errHeaderSize):
		return fmt.Errorf("%w: header inflates past %d bytes", ErrLimit, MaxHeaderBytes)
	case errors.Is(derr, ErrLimit):
		return derr
	case derr != nil:
		return fmt.Errorf("%w: header: %v", ErrCorrupt, derr)
	}
	return nil
}

// decodeHeader decodes the JSON header object from r into h: the tensors
// one at a time, at most MaxTensors of them. Keys are matched exactly;
// unknown keys are skipped; nothing but spaces may follow the object.
func decodeHeader(r io.Reader, h *Header) error {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	fields := map[string]any{
		"peft_type": &h.PeftType, "config_name": &h.ConfigName, "config": &h.Config, "metadata": &h.Metadata,
		"density": &h.Density, "alpha": &h.Alpha, "scope": &h.Scope, "base_fingerprint": &h.Base,
		"source_bytes": &h.SourceBytes,
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if key == "tensors" {
			if err := decodeTensors(dec, &h.Tensors); err != nil {
				return err
			}
			continue
		}
		v, ok := fields[key]
		if !ok {
			v = new(json.RawMessage) // an unknown key: skipped
		}
		if err := dec.Decode(v); err != nil {
			return fmt.Errorf("%q: %w", key, err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if errors.Is(err, errHeaderSize) { // spaces past the limit
			return err
		}
		return errors.New("data after the header object")
	}
	return nil
}

// decodeTensors decodes the tensors array (or null) element by element,
// into blocks that are copied once into a slice of the exact length: an
// appended slice would leave four times its size in garbage behind.
func decodeTensors(dec *json.Decoder, ts *[]TensorHeader) error {
	*ts = nil
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return err
	}
	if tok != json.Delim('[') {
		return fmt.Errorf("tensors: %v is not an array", tok)
	}
	const block = 4096
	var blocks [][]TensorHeader
	n := 0
	for dec.More() {
		if n == MaxTensors {
			return fmt.Errorf("%w: more than %d tensors", ErrLimit, MaxTensors)
		}
		if n%block == 0 {
			blocks = append(blocks, make([]TensorHeader, 0, block))
		}
		b := &blocks[len(blocks)-1]
		*b = (*b)[:len(*b)+1]
		if err := dec.Decode(&(*b)[len(*b)-1]); err != nil {
			return fmt.Errorf("tensor %d: %w", n, err)
		}
		n++
	}
	*ts = make([]TensorHeader, 0, n)
	for _, b := range blocks {
		*ts = append(*ts, b...)
	}
	return expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("want %v, got %v", d, tok)
	}
	return nil
}

// crcReader checksums what it reads and counts it.
type crcReader struct {
	r   io.Reader
	crc uint32
	n   int64
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	c.n += int64(n)
	return n, err
}

// errHeaderSize: the header inflates past MaxHeaderBytes.
var errHeaderSize = errors.New("header too large")

// capReader reads at most left bytes, then fails with errHeaderSize.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// A header of exactly the limit ends here: only a byte more is over.
		var b [1]byte
		if n, err := io.ReadFull(c.r, b[:]); n == 0 && errors.Is(err, io.EOF) {
			return 0, io.EOF
		}
		return 0, errHeaderSize
	}
	p = p[:min(int64(len(p)), c.left)]
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
