package safetensors

import (
	"bytes"
	"errors"
	"testing"
)

func TestNewWriterRejects(t *testing.T) {
	tests := []struct {
		name    string
		tensors []TensorInfo
		meta    map[string]string
		want    error
	}{
		{"duplicate", []TensorInfo{{Name: "a", DType: F32}, {Name: "a", DType: F16}}, nil, ErrDuplicate},
		{"reserved name", []TensorInfo{{Name: "__metadata__", DType: F32}}, nil, ErrBadHeader},
		{"invalid UTF-8 name", []TensorInfo{{Name: "\xff", DType: F32}}, nil, ErrBadHeader},
		{"invalid UTF-8 metadata", nil, map[string]string{"k": "\xfe"}, ErrBadHeader},
		{"unknown dtype", []TensorInfo{{Name: "a", DType: "F128"}}, nil, ErrDType},
		{"empty dtype", []TensorInfo{{Name: "a"}}, nil, ErrDType},
		{"negative dim", []TensorInfo{{Name: "a", DType: F32, Shape: []int64{2, -1}}}, nil, ErrShape},
		{"overflow", []TensorInfo{{Name: "a", DType: F32, Shape: []int64{1 << 62}}}, nil, ErrShape},
		{"total overflow", []TensorInfo{{Name: "a", DType: U8, Shape: []int64{1 << 62}}, {Name: "b", DType: U8, Shape: []int64{1 << 62}}}, nil, ErrShape},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if _, err := NewWriter(&buf, tt.meta, tt.tensors); !errors.Is(err, tt.want) {
				t.Errorf("NewWriter = %v, want %v", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes before failing", buf.Len())
			}
		})
	}
}

func TestWriterMisuse(t *testing.T) {
	ts := []TensorInfo{
		{Name: "e0", DType: F32, Shape: []int64{0}},
		{Name: "a", DType: F16, Shape: []int64{3}},
		{Name: "e1", DType: BF16, Shape: []int64{2, 0}},
		{Name: "i", DType: I32, Shape: []int64{1}},
		{Name: "e2", DType: U8, Shape: []int64{0}},
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, map[string]string{}, ts)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFloat32([]float32{1, 2, 3, 4}); !errors.Is(err, ErrOverrun) {
		t.Errorf("4 values into a 3-element tensor: %v, want ErrOverrun", err)
	}
	if err := w.WriteRaw(make([]byte, 7)); !errors.Is(err, ErrOverrun) {
		t.Errorf("7 bytes into a 6-byte tensor: %v, want ErrOverrun", err)
	}
	if err := w.WriteRaw([]byte{0}); err != nil { // half an F16 element
		t.Fatal(err)
	}
	if err := w.WriteFloat32([]float32{1, 2, 3}); !errors.Is(err, ErrOverrun) {
		t.Errorf("3 values into 5 bytes: %v, want ErrOverrun", err)
	}
	if err := w.WriteFloat32([]float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRaw([]byte{0x3c}); err != nil { // completes "a"; "e1" is skipped
		t.Fatal(err)
	}
	if err := w.WriteFloat32([]float32{1}); !errors.Is(err, ErrDType) {
		t.Errorf("WriteFloat32 into I32: %v, want ErrDType", err)
	}
	if err := w.WriteFloat32(nil); err != nil {
		t.Errorf("WriteFloat32(nil) = %v", err)
	}
	if err := w.Close(); !errors.Is(err, ErrIncomplete) {
		t.Errorf("Close before the last tensor: %v, want ErrIncomplete", err)
	}
	if err := w.WriteRaw([]byte{1, 2, 3, 4}); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteRaw after Close: %v, want ErrClosed", err)
	}

	// The same file written correctly parses, with the odd byte split kept.
	buf.Reset()
	w, err = NewWriter(&buf, map[string]string{}, ts)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() error{
		func() error { return w.WriteRaw([]byte{0}) },
		func() error { return w.WriteFloat32([]float32{1, 2}) },
		func() error { return w.WriteRaw([]byte{0x3c}) },
		func() error { return w.WriteRaw([]byte{1, 2, 3, 4}) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteRaw([]byte{1}); !errors.Is(err, ErrOverrun) {
		t.Errorf("write after the last tensor: %v, want ErrOverrun", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := parseBytes(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata == nil || len(f.Metadata) != 0 {
		t.Errorf("metadata %v, want empty and non-nil", f.Metadata)
	}
	a, _ := f.Lookup("a")
	raw, err := f.ReadRaw(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 0x3c00 is 1.0 and 0x4000 is 2.0 in F16; the bytes straddle the raw writes.
	if want := []byte{0, 0x00, 0x3c, 0x00, 0x40, 0x3c}; !bytes.Equal(raw, want) {
		t.Errorf("raw %x, want %x", raw, want)
	}
}

func TestWriterNoTensors(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "\x08\x00\x00\x00\x00\x00\x00\x00{}      " {
		t.Errorf("file %q", got)
	}
	if _, err := parseBytes(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after < len(p) {
		return 0, errors.New("disk full")
	}
	f.after -= len(p)
	return len(p), nil
}

func TestWriterErrorsAreSticky(t *testing.T) {
	if _, err := NewWriter(&failWriter{after: 4}, nil, nil); err == nil {
		t.Error("NewWriter ignored a write error")
	}
	fw := &failWriter{after: 64}
	w, err := NewWriter(fw, nil, []TensorInfo{{Name: "x", DType: F32, Shape: []int64{4}}})
	if err != nil {
		t.Fatal(err)
	}
	fw.after = 0
	if err := w.WriteFloat32([]float32{1}); err == nil {
		t.Fatal("write error not reported")
	}
	fw.after = 1 << 20
	if err := w.WriteFloat32([]float32{1}); err == nil {
		t.Error("write after a failed write succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a failed write succeeded")
	}
}

// TestPlanSize: a Plan's Size is the size of the file its Writer writes,
// names that JSON escapes and metadata included, and NewPlan refuses what
// NewWriter refuses.
func TestPlanSize(t *testing.T) {
	meta := map[string]string{"format": "pt", "note": "a \"quoted\"\n<tag> & é"}
	for _, ts := range [][]TensorInfo{
		nil,
		{{Name: "a", DType: F32, Shape: []int64{3}}},
		{{Name: "b\u2028\"\\<>", DType: BF16, Shape: []int64{2, 5}}, {Name: "é", DType: F64, Shape: nil}, {Name: "z", DType: U8, Shape: []int64{0, 7}}},
	} {
		for _, m := range []map[string]string{nil, meta} {
			file := writeFile(t, m, ts, func(w *Writer, ti TensorInfo) error {
				return w.WriteRaw(make([]byte, ti.NumElements()*int64(ti.DType.Size())))
			})
			p, err := NewPlan(m, ts)
			if err != nil || p.Size() != int64(len(file)) {
				t.Errorf("%v %v: plan %v (%v), file %d bytes", ts, m, p, err, len(file))
			}
		}
	}
	if _, err := NewPlan(nil, []TensorInfo{{Name: "a", DType: F32, Shape: []int64{-1}}}); !errors.Is(err, ErrShape) {
		t.Errorf("negative dimension: %v", err)
	}
	if _, err := NewPlan(nil, []TensorInfo{{Name: "a", DType: F32}, {Name: "b", DType: F32}, {Name: "a", DType: F32}}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate out of order: %v", err)
	}
	if _, err := NewPlan(nil, []TensorInfo{{Name: "a", DType: F32}, {Name: "a", DType: F32}}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate: %v", err)
	}
}
