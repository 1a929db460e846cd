package compress

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// WithMaxElements bounds the elements of all tensors together: two tensors
// each within the bound but over it together are refused with ErrLimit
// (checking each tensor alone passed every other test, issue 19), and
// exactly the bound passes.
func TestMaxElementsIsATotal(t *testing.T) {
	const max = 1000
	for _, tc := range []struct {
		what   string
		shapes []int64
		ok     bool
	}{
		{"one tensor at the bound", []int64{max}, true},
		{"two tensors making the bound", []int64{600, 400}, true},
		{"two tensors past it, each within", []int64{600, 401}, false},
	} {
		var coded []Coded
		for i, n := range tc.shapes {
			coded = append(coded, zeros(string(rune('a'+i)), "F32", n))
		}
		checkRead(t, tc.what, loraHeader(), coded, tc.ok, ErrLimit, WithMaxElements(max))
	}
}

// A header's density is in (0, 1]: 0, a negative one or one over 1 is a
// corrupt header (density 0 passed every test, issue 19); 1 and a small
// positive density read.
func TestHeaderDensityRange(t *testing.T) {
	for _, d := range []float64{1, 1e-9, 0.2, 0, -0.1, 1.0000001} {
		h := loraHeader()
		h.Density = d
		checkRead(t, fmt.Sprint("density ", d), h, []Coded{zeros("a", "F32", 4)}, d > 0 && d <= 1, ErrCorrupt)
	}
}

// checkRead writes a container of h and coded and reads its header with
// opts: it must read if ok, else fail with want.
func checkRead(t *testing.T, what string, h Header, coded []Coded, ok bool, want error, opts ...ReaderOption) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Write(&buf, h, coded); err != nil {
		t.Fatal(err)
	}
	_, err := NewReader(bytes.NewReader(buf.Bytes()), opts...)
	switch {
	case ok && err != nil:
		t.Errorf("%s: %v", what, err)
	case !ok && !errors.Is(err, want):
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}
