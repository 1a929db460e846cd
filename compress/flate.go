package compress

import (
	"bytes"
	"compress/flate"
)

// deflate compresses the container header: tensor names and fields repeat,
// so it shrinks several times over, which matters for small adapters.
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
