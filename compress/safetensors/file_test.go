package safetensors

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// floatValues returns n values mixing specials and random magnitudes.
func floatValues(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	specials := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 65504, 1e-7, 0x1p-24, 3.4e38,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	v := make([]float32, n)
	for i := range v {
		if i < len(specials) {
			v[i] = specials[i]
		} else {
			v[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(10)-5)))
		}
	}
	return v
}

// expectFloat32 returns what reading v back from dtype dt should give.
func expectFloat32(v []float32, dt DType) []float32 {
	out := make([]float32, len(v))
	switch dt {
	case F32, F64:
		copy(out, v)
	case F16:
		h := make([]uint16, len(v))
		Float32ToF16(h, v)
		F16ToFloat32(out, h)
	case BF16:
		h := make([]uint16, len(v))
		Float32ToBF16(h, v)
		BF16ToFloat32(out, h)
	}
	return out
}

func sameFloats(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool {
		return math.Float32bits(x) == math.Float32bits(y) || x != x && y != y
	})
}

func TestRoundTripFloat(t *testing.T) {
	for _, dt := range []DType{F64, F32, F16, BF16} {
		t.Run(string(dt), func(t *testing.T) {
			ts := []TensorInfo{
				{Name: "w.big", DType: dt, Shape: []int64{300, 271}}, // larger than one conversion chunk
				{Name: "a.scalar", DType: dt, Shape: []int64{}},
				{Name: "m.empty", DType: dt, Shape: []int64{0, 5}},
				{Name: "b.vec", DType: dt, Shape: []int64{17}},
			}
			values := map[string][]float32{}
			for i, ti := range ts {
				values[ti.Name] = floatValues(int(ti.NumElements()), uint64(i))
			}
			file := writeFile(t, map[string]string{"format": "pt"}, ts, func(w *Writer, ti TensorInfo) error {
				v := values[ti.Name]
				// Write in uneven pieces to exercise partial tensors.
				for len(v) > 0 {
					k := min(len(v), 1000)
					if err := w.WriteFloat32(v[:k]); err != nil {
						return err
					}
					v = v[k:]
				}
				return nil
			})
			if hl := binary.LittleEndian.Uint64(file); hl%8 != 0 {
				t.Errorf("header length %d is not a multiple of 8", hl)
			}
			if !bytes.HasPrefix(file[8:], []byte(`{"__metadata__":{"format":"pt"},"w.big":`)) {
				t.Errorf("header starts %q", file[8:50])
			}
			f, err := parseBytes(file)
			if err != nil {
				t.Fatal(err)
			}
			if f.Metadata["format"] != "pt" || len(f.Tensors) != len(ts) {
				t.Fatalf("metadata %v, %d tensors", f.Metadata, len(f.Tensors))
			}
			for _, want := range ts {
				ti, ok := f.Lookup(want.Name)
				if !ok {
					t.Fatalf("no tensor %q", want.Name)
				}
				if ti.DType != dt || !slices.Equal(ti.Shape, want.Shape) || ti.Size != want.NumElements()*int64(dt.Size()) {
					t.Errorf("%s: got %+v", want.Name, ti)
				}
				got, err := f.ReadFloat32(ti, nil)
				if err != nil {
					t.Fatal(err)
				}
				if exp := expectFloat32(values[want.Name], dt); !sameFloats(got, exp) {
					t.Errorf("%s: values differ", want.Name)
				}
			}
		})
	}
}

func TestReadFloat32F64Rounds(t *testing.T) {
	vals := []float64{0.1, 1 + 0x1p-24, 1 + 0x1.8p-24, 1e300, -1e-300, math.Pi}
	raw := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(raw[8*i:], math.Float64bits(v))
	}
	f, err := parseBytes(build(`{"x":{"dtype":"F64","shape":[6],"data_offsets":[0,48]}}`, raw))
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.ReadFloat32(f.Tensors[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if got[i] != float32(v) {
			t.Errorf("F64 %g read as %g, want %g", v, got[i], float32(v))
		}
	}
}

func TestRoundTripRaw(t *testing.T) {
	ts := []TensorInfo{
		{Name: "ids", DType: I64, Shape: []int64{3}},
		{Name: "mask", DType: Bool, Shape: []int64{2, 2}},
		{Name: "q", DType: I8, Shape: []int64{5}},
	}
	data := map[string][]byte{
		"ids":  binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 1), 1<<40), math.MaxUint64),
		"mask": {1, 0, 0, 1},
		"q":    {0x80, 0xff, 0, 1, 0x7f},
	}
	file := writeFile(t, nil, ts, func(w *Writer, ti TensorInfo) error {
		d := data[ti.Name]
		if err := w.WriteRaw(d[:1]); err != nil {
			return err
		}
		return w.WriteRaw(d[1:])
	})
	if bytes.Contains(file, []byte("__metadata__")) {
		t.Error("nil metadata was written")
	}
	f, err := parseBytes(file)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata != nil {
		t.Errorf("metadata %v, want nil", f.Metadata)
	}
	dst := make([]byte, 0, 64)
	for _, ti := range f.Tensors {
		got, err := f.ReadRaw(ti, dst)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data[ti.Name]) {
			t.Errorf("%s: %v, want %v", ti.Name, got, data[ti.Name])
		}
		if unsafe.SliceData(got) != unsafe.SliceData(dst) {
			t.Errorf("%s: dst with enough capacity was not reused", ti.Name)
		}
		if _, err := f.ReadFloat32(ti, nil); !errors.Is(err, ErrDType) {
			t.Errorf("ReadFloat32(%s) = %v, want ErrDType", ti.DType, err)
		}
	}
}

func TestReadFloat32ReusesDst(t *testing.T) {
	file := writeFile(t, nil, []TensorInfo{{Name: "x", DType: BF16, Shape: []int64{4}}}, func(w *Writer, _ TensorInfo) error {
		return w.WriteFloat32([]float32{1, 2, 3, 4})
	})
	f, err := parseBytes(file)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 10)
	got, err := f.ReadFloat32(f.Tensors[0], dst)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []float32{1, 2, 3, 4}) || &got[0] != &dst[0] {
		t.Errorf("got %v (reused %v)", got, &got[0] == &dst[0])
	}
}

func TestReadOutsideFile(t *testing.T) {
	f, err := parseBytes(build(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   `, make([]byte, 8)))
	if err != nil {
		t.Fatal(err)
	}
	ti := f.Tensors[0]
	for _, bad := range []TensorInfo{
		{Name: "before", DType: F32, Offset: 0, Size: 8},
		{Name: "after", DType: F32, Offset: ti.Offset + 4, Size: 8},
		{Name: "negative", DType: F32, Offset: ti.Offset, Size: -4},
		{Name: "huge", DType: F32, Offset: ti.Offset, Size: math.MaxInt64},
		{Name: "past end", DType: F32, Offset: math.MaxInt64, Size: 0},
	} {
		if _, err := f.ReadRaw(bad, nil); !errors.Is(err, ErrOffsets) {
			t.Errorf("ReadRaw(%s) = %v, want ErrOffsets", bad.Name, err)
		}
		if _, err := f.ReadFloat32(bad, nil); !errors.Is(err, ErrOffsets) {
			t.Errorf("ReadFloat32(%s) = %v, want ErrOffsets", bad.Name, err)
		}
	}
}

// The real adapter written by Hugging Face peft 0.21.0 (copied from the
// shared fixtures).
func TestFixtureIA3(t *testing.T) {
	f, err := Open("testdata/adapter_model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(f.Metadata) != 1 || f.Metadata["format"] != "pt" {
		t.Errorf("metadata = %v, want {format: pt}", f.Metadata)
	}
	if len(f.Tensors) != 12 {
		t.Fatalf("%d tensors, want 12", len(f.Tensors))
	}
	var total int64
	for _, ti := range f.Tensors {
		want := []int64{1152, 1}
		if strings.Contains(ti.Name, "fc2") {
			want = []int64{1, 1536}
		}
		if ti.DType != F32 || !slices.Equal(ti.Shape, want) {
			t.Errorf("%s: %s %v, want F32 %v", ti.Name, ti.DType, ti.Shape, want)
		}
		total += ti.NumElements()
	}
	if total != 16128 {
		t.Errorf("%d parameters, want 16128", total)
	}
	ti, ok := f.Lookup("base_model.model.blocks.0.mlp.fc2.ia3_l")
	if !ok {
		t.Fatal("fc2 of block 0 missing")
	}
	if ti.Offset != 8+1280+4608 {
		t.Errorf("offset %d, want %d", ti.Offset, 8+1280+4608)
	}
	v, err := f.ReadFloat32(ti, nil)
	if err != nil {
		t.Fatal(err)
	}
	if math.Float32bits(v[0]) != 0x3f90b4fb {
		t.Errorf("first value %g (%#08x), want 0x3f90b4fb", v[0], math.Float32bits(v[0]))
	}
	// The data buffer, tensors in file order, hashed as Python's hashlib saw it.
	inFileOrder := slices.SortedFunc(slices.Values(f.Tensors), func(a, b TensorInfo) int { return cmp.Compare(a.Offset, b.Offset) })
	h := sha256.New()
	var raw []byte
	for _, ti := range inFileOrder {
		if raw, err = f.ReadRaw(ti, raw); err != nil {
			t.Fatal(err)
		}
		h.Write(raw)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != "33d3e094e90eca5ddf55130aab8e5fd66078984267a5fb26902faab51b2a6c15" {
		t.Errorf("data sha256 %s", got)
	}
	if _, ok := f.Lookup("nope"); ok {
		t.Error("Lookup found a missing tensor")
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open("testdata/does-not-exist.safetensors"); err == nil {
		t.Error("Open of a missing file succeeded")
	}
	dir := t.TempDir()
	if err := writeTestFile(dir+"/bad.safetensors", build(`{"a":1}`, nil)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir + "/bad.safetensors")
	if !errors.Is(err, ErrBadHeader) || !strings.Contains(err.Error(), "bad.safetensors") {
		t.Errorf("Open = %v, want ErrBadHeader naming the file", err)
	}
}

// TestReadFloat32At reads a tensor in parts of every size: each equals
// its slice of the whole, and a part past the end is refused.
func TestReadFloat32At(t *testing.T) {
	vals := floatValues(100_000, 3)
	for _, dt := range []DType{F64, F32, F16, BF16} {
		file := writeFile(t, nil, []TensorInfo{{Name: "x", DType: dt, Shape: []int64{int64(len(vals))}}}, func(w *Writer, _ TensorInfo) error {
			return w.WriteFloat32(vals)
		})
		f, err := parseBytes(file)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := f.ReadFloat32(f.Tensors[0], nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range []int{1, 3, 16384, 40000, len(vals)} {
			got := make([]float32, part)
			for start := 0; start < len(vals); start += part {
				p := got[:min(part, len(vals)-start)]
				if err := f.ReadFloat32At(f.Tensors[0], int64(start), p); err != nil {
					t.Fatal(err)
				}
				for i := range p {
					if math.Float32bits(p[i]) != math.Float32bits(whole[start+i]) {
						t.Fatalf("%s part %d at %d: element %d differs", dt, part, start, i)
					}
				}
			}
		}
		for _, bad := range [][2]int64{{-1, 1}, {int64(len(vals)), 1}, {int64(len(vals)) - 1, 2}} {
			if err := f.ReadFloat32At(f.Tensors[0], bad[0], make([]float32, bad[1])); !errors.Is(err, ErrOffsets) {
				t.Errorf("%s elements [%d, +%d): %v", dt, bad[0], bad[1], err)
			}
		}
	}
}
