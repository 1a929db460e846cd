package safetensors

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"runtime"
	"slices"
	"testing"
)

// fuzzSeeds returns small handmade files, valid and not, for FuzzParse.
func fuzzSeeds(t testing.TB) [][]byte {
	seeds := [][]byte{
		build(`{}`, nil),
		build(`{"__metadata__":{"format":"pt"}}  `, nil),
		build(`{"__metadata__":null,"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, []byte{0, 0, 0x80, 0x3f, 0, 0, 0xc0, 0x7f}),
		build(`{"z":{"dtype":"F16","shape":[0,3],"data_offsets":[4,4]},"s":{"dtype":"BF16","shape":[],"data_offsets":[0,2]},"h":{"dtype":"F16","shape":[1],"data_offsets":[2,4]}}`, []byte{0x80, 0x3f, 0x00, 0x7c}),
		build(`{"d":{"dtype":"F64","shape":[1,1],"data_offsets":[0,8]},"i":{"dtype":"I8","shape":[2],"data_offsets":[8,10]}}`, []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0xff, 1}),
		build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)),
		build(`{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,1]}}`, []byte{1}),
		build(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, []byte{1, 2}),
	}
	fixture, err := os.ReadFile("testdata/adapter_model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	return append(seeds, fixture)
}

var parseErrors = []error{ErrHeaderTooLarge, ErrBadHeader, ErrDType, ErrShape, ErrOffsets, ErrDuplicate}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		file, err := parseBytes(b)
		if err != nil {
			if !slices.ContainsFunc(parseErrors, func(e error) bool { return errors.Is(err, e) }) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			checkAllocated(t, &before, len(b))
			return
		}
		dataStart := int64(len(b))
		var covered int64
		for i, ti := range file.Tensors {
			if i > 0 && file.Tensors[i-1].Name >= ti.Name {
				t.Fatalf("tensors not sorted and unique: %q, %q", file.Tensors[i-1].Name, ti.Name)
			}
			if ti.Size != ti.NumElements()*int64(ti.DType.Size()) || ti.Offset < 8 || ti.Offset+ti.Size > int64(len(b)) {
				t.Fatalf("bad tensor %+v in a %d-byte file", ti, len(b))
			}
			dataStart = min(dataStart, ti.Offset)
			covered += ti.Size
			raw, err := file.ReadRaw(ti, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(raw, b[ti.Offset:ti.Offset+ti.Size]) {
				t.Fatalf("%q: ReadRaw returned the wrong bytes", ti.Name)
			}
			if ti.DType.IsFloat() {
				v, err := file.ReadFloat32(ti, nil)
				if err != nil || int64(len(v)) != ti.NumElements() {
					t.Fatalf("%q: ReadFloat32 = %d values, %v", ti.Name, len(v), err)
				}
			}
		}
		if len(file.Tensors) > 0 && covered != int64(len(b))-dataStart {
			t.Fatalf("tensors cover %d bytes of a %d-byte data buffer", covered, int64(len(b))-dataStart)
		}
		checkAllocated(t, &before, len(b))
		checkRewrite(t, file)
	})
}

// checkAllocated fails if more was allocated since before than parsing and
// reading an n-byte input can justify: the JSON tokens of the header and the
// tensors converted to float32 (at most twice the data size, for F16) cost a
// small multiple of n, never more.
func checkAllocated(t *testing.T, before *runtime.MemStats, n int) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(64*n+4<<20); got > limit {
		t.Fatalf("allocated %d bytes for a %d-byte input (limit %d)", got, n, limit)
	}
}

// checkRewrite writes file again with Writer and checks that it parses back
// to the same metadata, tensors and bytes.
func checkRewrite(t *testing.T, file *File) {
	var out bytes.Buffer
	w, err := NewWriter(&out, file.Metadata, file.Tensors)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	for _, ti := range file.Tensors {
		raw, err := file.ReadRaw(ti, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteRaw(raw); err != nil {
			t.Fatalf("WriteRaw: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := parseBytes(out.Bytes())
	if err != nil {
		t.Fatalf("rewritten file does not parse: %v", err)
	}
	if (file.Metadata == nil) != (again.Metadata == nil) || !maps.Equal(file.Metadata, again.Metadata) {
		t.Fatalf("metadata %q became %q", file.Metadata, again.Metadata)
	}
	if len(again.Tensors) != len(file.Tensors) {
		t.Fatalf("%d tensors became %d", len(file.Tensors), len(again.Tensors))
	}
	for i, ti := range file.Tensors {
		tj := again.Tensors[i]
		if ti.Name != tj.Name || ti.DType != tj.DType || !slices.Equal(ti.Shape, tj.Shape) || ti.Size != tj.Size {
			t.Fatalf("tensor %+v became %+v", ti, tj)
		}
		a, _ := file.ReadRaw(ti, nil)
		b, _ := again.ReadRaw(tj, nil)
		if !bytes.Equal(a, b) {
			t.Fatalf("%q: data changed", ti.Name)
		}
	}
}
