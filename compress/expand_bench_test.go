package compress

import (
	"bytes"
	"path/filepath"
	"testing"
)

// BenchmarkExpand measures the whole decompression of a 40M-parameter
// synthetic adapter into a directory: decode, convert and write (run with
// TMPDIR on a tmpfs to leave the disk out). MB/s are of the float32 values
// decoded.
func BenchmarkExpand(b *testing.B) {
	ts := synthAdapter(40 << 20)
	b.Run("f32", func(b *testing.B) { benchExpand(b, ts, "", ExpandOptions{}) })
	b.Run("to-bf16", func(b *testing.B) { benchExpand(b, ts, "", ExpandOptions{DType: "bf16"}) })
	b.Run("residual", func(b *testing.B) {
		base := make([]Tensor, len(ts))
		names, vals, shapes := []string{}, map[string][]float32{}, map[string][]int64{}
		fp := newFingerprint()
		for i, t := range ts {
			base[i] = Tensor{Name: t.Name, Shape: t.Shape, Tau: make([]float32, len(t.Tau))}
			for j := range base[i].Tau {
				base[i].Tau[j] = float32(j%97) * 0.01
			}
			names = append(names, t.Name)
			vals[t.Name], shapes[t.Name] = base[i].Tau, t.Shape
			fp.add(t.Name, base[i].Tau)
		}
		dir := filepath.Join(b.TempDir(), "base")
		writeModel(b, dir, ModelWeightsFile, "F32", names, vals, shapes)
		benchExpand(b, ts, fp.sum(), ExpandOptions{BaseDir: dir})
	})
}

func benchExpand(b *testing.B, ts []Tensor, base string, o ExpandOptions) {
	coded, err := Compress(ts, WithDensity(0.2))
	if err != nil {
		b.Fatal(err)
	}
	peft := "LORA"
	if base != "" {
		peft = PeftTypeFull
	}
	var buf bytes.Buffer
	h := Header{PeftType: peft, ConfigName: AdapterConfigFile, Config: `{"peft_type":"LORA"}`, Density: 0.2, Alpha: "auto", Scope: ScopeGlobal, Base: base}
	if base != "" {
		h.ConfigName = ModelConfigFile
	}
	if _, err := Write(&buf, h, coded); err != nil {
		b.Fatal(err)
	}
	out := b.TempDir()
	o.Overwrite = true // the same directory every time
	b.SetBytes(denseBytes(ts))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Expand(bytes.NewReader(buf.Bytes()), out, o); err != nil {
			b.Fatal(err)
		}
	}
}
