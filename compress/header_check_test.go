package compress

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// code is a tensor of n F32 elements whose header declares kept, mode, m
// and a payload of size bytes (zeros: NewReader reads no payload).
func code(name string, n, kept int64, mode string, m uint32, size int64) Coded {
	return Coded{
		TensorHeader: TensorHeader{Name: name, DType: "F32", Shape: []int64{n}, Kept: kept, Mode: mode, M: m, Bytes: size},
		Payload:      make([]byte, size),
	}
}

// TestHeaderCodesChecked: NewReader, which Verify and inspect rely on,
// refuses a header declaring codes no encoder writes, before it reads any
// payload; the extremes an encoder can write pass.
func TestHeaderCodesChecked(t *testing.T) {
	const n = 1024
	sparse := tensorCode{Kept: 100, Mode: modeSparse, M: 7}
	lo, hi := minPayload(n, sparse), maxPayload(n, sparse)
	for _, tc := range []struct {
		what  string
		coded []Coded
		ok    bool
	}{
		{"the shortest payload the counts allow", []Coded{code("a", n, 100, modeSparse, 7, lo)}, true},
		{"the longest payload the counts allow", []Coded{code("a", n, 100, modeSparse, 7, hi)}, true},
		{"a payload one byte shorter", []Coded{code("a", n, 100, modeSparse, 7, lo-1)}, false},
		{"a payload one byte longer", []Coded{code("a", n, 100, modeSparse, 7, hi+1)}, false},
		{"two tensors of one name", []Coded{zeros("a", "F32", 4), zeros("a", "F32", 4)}, false},
		{"tensors out of name order", []Coded{zeros("b", "F32", 4), zeros("a", "F32", 4)}, false},
		{"more kept than elements", []Coded{code("a", 4, 5, modeDense, 1, 2)}, false},
		{"dense mode with half kept", []Coded{code("a", n, n/2, modeDense, 1, n/8)}, false},
		{"sparse mode with more than half kept", []Coded{code("a", n, 600, modeSparse, 1, 150)}, false},
		{"a Golomb parameter over 2^30", []Coded{code("a", n, 0, modeSparse, 1<<31, 0)}, false},
	} {
		var buf bytes.Buffer
		if _, err := Write(&buf, loraHeader(), tc.coded); err != nil {
			t.Fatal(err)
		}
		_, err := NewReader(bytes.NewReader(buf.Bytes()))
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.what, err)
		case !tc.ok && !errors.Is(err, ErrCorrupt):
			t.Errorf("%s: %v, want ErrCorrupt", tc.what, err)
		}
	}
}

// TestHeaderOver16MiBRefused: a header that inflates past MaxHeaderBytes
// (here a config string of 16 MiB, a few KiB deflated) is refused with
// ErrLimit as the inflater reaches the limit.
func TestHeaderOver16MiBRefused(t *testing.T) {
	h := loraHeader()
	h.Config = `{"r":16,"pad":"` + strings.Repeat("a", MaxHeaderBytes) + `"}`
	var buf bytes.Buffer
	if _, err := Write(&buf, h, nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("Write = %v, want ErrLimit", err)
	}
	hj := `{"peft_type":"LORA","config_name":"adapter_config.json","config":` + jsonString(h.Config) +
		`,"density":0.2,"alpha":"auto","scope":"global","tensors":[]}`
	_, err := NewReader(bytes.NewReader(rawContainer(t, []byte(hj))))
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("NewReader = %v, want ErrLimit", err)
	}
}

// jsonString quotes s, which holds no character JSON escapes, as a JSON
// string.
func jsonString(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

// rawContainer is a container of no tensors around header JSON that Write
// would refuse to write.
func rawContainer(t *testing.T, headerJSON []byte) []byte {
	t.Helper()
	z, err := deflate(headerJSON)
	if err != nil {
		t.Fatal(err)
	}
	pre := []byte(Magic)
	pre = appendU32(pre, Version)
	pre = appendU32(pre, uint32(len(z)))
	pre = append(pre, z...)
	crc := make([]byte, 4)
	putCRC(crc, pre)
	return append(pre, crc...)
}

func appendU32(b []byte, v uint32) []byte {
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}

// TestDecodeTensorRejectsCountMismatch: a dense payload whose codes reach
// the end of the tensor with dropped elements still declared fails, instead
// of decoding more kept elements than the header says.
func TestDecodeTensorRejectsCountMismatch(t *testing.T) {
	const n = 8
	var w bitWriter
	g := newGolomb(1)
	g.encode(&w, n-1) // n-1 kept elements, then the one dropped element
	for range n - 1 {
		w.write(0, 1)
	}
	tc := tensorCode{Kept: n - 1, Mode: modeDense, M: 1, Payload: w.flush()}
	dst := make([]float32, n)
	if err := decodeTensor(dst, tc, 0, 1, false, 0, n); err != nil {
		t.Fatalf("the consistent code: %v", err)
	}
	tc.Kept = n - 3 // three dropped elements declared, one coded
	if err := decodeTensor(dst, tc, 0, 1, false, 0, n); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("three dropped elements declared, one coded: %v, want ErrCorrupt", err)
	}
}

// TestHeaderAtTheLimit: a header of exactly MaxHeaderBytes reads; one byte
// more, even a space after the object, is ErrLimit, not a corrupt header.
func TestHeaderAtTheLimit(t *testing.T) {
	head := `{"peft_type":"LORA","config_name":"adapter_config.json","config":"{\"r\":16,\"pad\":\"`
	tail := `\"}","density":0.2,"alpha":"auto","scope":"global","tensors":[]}`
	exact := head + strings.Repeat("a", MaxHeaderBytes-len(head)-len(tail)) + tail
	if len(exact) != MaxHeaderBytes {
		t.Fatalf("built a header of %d bytes", len(exact))
	}
	if _, err := NewReader(bytes.NewReader(rawContainer(t, []byte(exact)))); err != nil {
		t.Fatalf("a header of exactly %d bytes: %v", MaxHeaderBytes, err)
	}
	if _, err := NewReader(bytes.NewReader(rawContainer(t, []byte(exact+" ")))); !errors.Is(err, ErrLimit) {
		t.Fatalf("a header one space over the limit: %v, want ErrLimit", err)
	}
}
