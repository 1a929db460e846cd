package compress

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// synthAdapter builds a LoRA-like task vector of about n parameters:
// alternating A and B matrices with different spreads.
func synthAdapter(n int) []Tensor {
	rng := rand.New(rand.NewPCG(11, 12))
	const per = 1 << 20
	var ts []Tensor
	for i := 0; i*per < n; i++ {
		tau := make([]float32, per)
		sd := 0.02
		if i%2 == 1 {
			sd = 0.005
		}
		for j := range tau {
			tau[j] = float32(rng.NormFloat64() * sd)
		}
		ts = append(ts, Tensor{Name: "t" + string(rune('A'+i/26)) + string(rune('a'+i%26)), DType: "F32", Shape: []int64{per}, Tau: tau})
	}
	return ts
}

func denseBytes(ts []Tensor) int64 {
	var n int64
	for _, t := range ts {
		n += int64(len(t.Tau)) * 4
	}
	return n
}

func BenchmarkCompress40M(b *testing.B) {
	ts := synthAdapter(40 << 20)
	b.SetBytes(denseBytes(ts))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compress(ts, WithDensity(0.2)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecompress40M(b *testing.B) {
	ts := synthAdapter(40 << 20)
	coded, err := Compress(ts, WithDensity(0.2))
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := Write(&buf, Header{Density: 0.2, Alpha: "auto", Scope: ScopeGlobal}, coded); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	var n int64
	for _, t := range ts {
		n += int64(len(t.Tau)) * 4
	}
	b.SetBytes(n)
	b.ReportAllocs()
	var dst []float32
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := r.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			if dst, err = r.Values(dst); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkFixtures measures compress and decompress throughput on the real
// adapters in testdata and reports the payload against the entropy bound.
func BenchmarkFixtures(b *testing.B) {
	for _, name := range []string{"python-lora-r16", "python-lora-r16-bf16", "c-ia3"} {
		src, err := Load("testdata/peft/"+name, "")
		if err != nil {
			b.Fatal(err)
		}
		dense := denseBytes(src.Tensors)
		var data []byte
		b.Run("compress/"+name, func(b *testing.B) {
			b.SetBytes(dense)
			b.ReportAllocs()
			var buf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				if _, _, err := Encode(&buf, src); err != nil {
					b.Fatal(err)
				}
			}
			data = buf.Bytes()
			s := Summarize(mustHeaderB(b, data), int64(len(data)))
			b.ReportMetric(s.RatioBound, "x_bound")
			b.ReportMetric(s.BitsPerParam, "bits/param")
		})
		b.Run("decompress/"+name, func(b *testing.B) {
			b.SetBytes(dense)
			b.ReportAllocs()
			for b.Loop() {
				if err := decodeAll(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func mustHeaderB(b *testing.B, data []byte) *Header {
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	return r.Header()
}

// BenchmarkSizeVsBound reports the payload of a 40M-parameter synthetic
// adapter against n*(H(d)+d) at several densities.
func BenchmarkSizeVsBound(b *testing.B) {
	ts := synthAdapter(40 << 20)
	for _, d := range []float64{0.05, 0.1, 0.2, 0.5} {
		b.Run(fmt.Sprintf("d=%g", d), func(b *testing.B) {
			var coded []Coded
			for b.Loop() {
				var err error
				if coded, err = Compress(ts, WithDensity(d)); err != nil {
					b.Fatal(err)
				}
			}
			var n, kept, payload int64
			for i, c := range coded {
				n += int64(len(ts[i].Tau))
				kept += c.Kept
				payload += c.Bytes
			}
			b.ReportMetric(float64(payload*8)/BoundBits(n, kept), "x_bound")
		})
	}
}
