package compress

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
)

// deflate compresses the container header: tensor names and fields repeat,
// so it shrinks 4-6x, which matters for small adapters.
func deflate(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// inflate decompresses at most limit bytes.
func inflate(b []byte, limit int64) ([]byte, error) {
	r := flate.NewReader(bytes.NewReader(b))
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("%w: header inflates past %d bytes", ErrLimit, limit)
	}
	return out, nil
}
