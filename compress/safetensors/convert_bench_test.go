package safetensors

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

const benchN = 1 << 20

func benchFloats() []float32 {
	r := rand.New(rand.NewPCG(1, 1))
	v := make([]float32, benchN)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// Throughput is counted in float32 bytes (4 per element) on both sides.

func BenchmarkFloat32ToBF16(b *testing.B) {
	src, dst := benchFloats(), make([]uint16, benchN)
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	for b.Loop() {
		Float32ToBF16(dst, src)
	}
	if dst[1] != f32ToBF16(src[1]) {
		b.Fatal("wrong output")
	}
}

func BenchmarkBF16ToFloat32(b *testing.B) {
	src, dst := make([]uint16, benchN), make([]float32, benchN)
	Float32ToBF16(src, benchFloats())
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	for b.Loop() {
		BF16ToFloat32(dst, src)
	}
	if f32ToBF16(dst[1]) != src[1] {
		b.Fatal("wrong output")
	}
}

func BenchmarkFloat32ToF16(b *testing.B) {
	src, dst := benchFloats(), make([]uint16, benchN)
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	for b.Loop() {
		Float32ToF16(dst, src)
	}
	if dst[1] != f32ToF16(src[1]) {
		b.Fatal("wrong output")
	}
}

func BenchmarkF16ToFloat32(b *testing.B) {
	src, dst := make([]uint16, benchN), make([]float32, benchN)
	Float32ToF16(src, benchFloats())
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	for b.Loop() {
		F16ToFloat32(dst, src)
	}
	if f32ToF16(dst[1]) != src[1] {
		b.Fatal("wrong output")
	}
}

// BenchmarkReadFloat32BF16 reads a BF16 tensor from memory into float32.
func BenchmarkReadFloat32BF16(b *testing.B) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, nil, []TensorInfo{{Name: "x", DType: BF16, Shape: []int64{benchN}}})
	if err != nil {
		b.Fatal(err)
	}
	src := benchFloats()
	if err := w.WriteFloat32(src); err != nil {
		b.Fatal(err)
	}
	f, err := parseBytes(buf.Bytes())
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, benchN)
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	for b.Loop() {
		if dst, err = f.ReadFloat32(f.Tensors[0], dst); err != nil {
			b.Fatal(err)
		}
	}
	if f32ToBF16(dst[1]) != f32ToBF16(src[1]) {
		b.Fatal("wrong output")
	}
}

// BenchmarkWriteFloat32BF16 converts float32 to BF16 through a Writer.
func BenchmarkWriteFloat32BF16(b *testing.B) {
	src := benchFloats()
	ts := []TensorInfo{{Name: "x", DType: BF16, Shape: []int64{benchN}}}
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	for b.Loop() {
		w, err := NewWriter(io.Discard, nil, ts)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.WriteFloat32(src); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
