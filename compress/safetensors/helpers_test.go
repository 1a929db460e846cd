package safetensors

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"
)

// build assembles a file from a header and a data buffer.
func build(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func parseBytes(b []byte) (*File, error) {
	return Parse(bytes.NewReader(b), int64(len(b)))
}

// writeFile writes a file with the given tensors through Writer, filling each
// with fill(tensor), and returns its bytes.
func writeFile(t *testing.T, meta map[string]string, ts []TensorInfo, fill func(*Writer, TensorInfo) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, meta, ts)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range ts {
		if err := fill(w, ti); err != nil {
			t.Fatalf("tensor %q: %v", ti.Name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeTestFile(path string, data []byte) error {
	return os.WriteFile(path, data, 0o644)
}
