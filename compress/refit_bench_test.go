package compress

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// synthLoRA builds a LoRA adapter of mods modules of width dim and rank r
// with Gaussian factors (B smaller, as after training from B = 0).
func synthLoRA(mods, dim, r int) []Tensor { return synthLoRAShape(mods, dim, dim, r) }

// synthLoRAShape is synthLoRA with modules of in inputs and out outputs.
func synthLoRAShape(mods, in, out, r int) []Tensor {
	rng := rand.New(rand.NewPCG(5, 6))
	fill := func(n int, sd float64) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * sd)
		}
		return x
	}
	var ts []Tensor
	for m := 0; m < mods; m++ {
		pre := fmt.Sprintf("base_model.model.layers.%03d.proj", m)
		ts = append(ts,
			Tensor{Name: pre + ".lora_A.weight", DType: "F32", Shape: []int64{int64(r), int64(in)}, Tau: fill(r*in, 0.02)},
			Tensor{Name: pre + ".lora_B.weight", DType: "F32", Shape: []int64{int64(out), int64(r)}, Tau: fill(r*out, 0.005)})
	}
	return ts
}

// BenchmarkRefit compares the refit with the plain codec on the same
// adapters: the refit's goal is to stay within 5x of plain compress.
func BenchmarkRefit(b *testing.B) {
	cases := []struct {
		name string
		ts   []Tensor
	}{
		{"python-r16", nil},
		{"synth-r16-2048", synthLoRA(32, 2048, 16)},
		{"synth-r64-2048", synthLoRA(8, 2048, 64)},
	}
	for _, c := range cases {
		ts := c.ts
		if ts == nil {
			src, err := Load("testdata/peft/python-lora-r16", "")
			if err != nil {
				b.Fatal(err)
			}
			ts = src.Tensors
		}
		for _, mode := range []string{"plain", "refit"} {
			opts := []Option{WithDensity(0.2)}
			if mode == "refit" {
				opts = append(opts, WithRefit(DefaultRefit))
			}
			b.Run(c.name+"/"+mode, func(b *testing.B) {
				b.SetBytes(denseBytes(ts))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := Compress(ts, opts...); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
