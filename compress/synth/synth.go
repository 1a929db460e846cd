// Package synth writes synthetic PEFT adapters of any size, for tests and
// benchmarks that need more than the small real fixtures.
package synth

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/expertd/expertd/compress/safetensors"
)

// WriteLoRA writes dir/adapter_config.json and dir/adapter_model.safetensors:
// an F32 LoRA adapter of about params parameters (1 MiB-element lora_A
// tensors of Gaussian values, sd 0.02), reproducible from seed.
func WriteLoRA(dir string, params int, seed uint64) error {
	cfg := `{"peft_type":"LORA","r":16,"lora_alpha":32,"target_modules":["q","v"],"base_model_name_or_path":"synthetic"}`
	const per = 1 << 20
	var infos []safetensors.TensorInfo
	for i := 0; i*per < params; i++ {
		infos = append(infos, safetensors.TensorInfo{Name: fmt.Sprintf("base_model.model.layers.%04d.lora_A.weight", i), DType: safetensors.F32, Shape: []int64{16, per / 16}})
	}
	return write(dir, cfg, infos, func(int) float64 { return 0.02 }, seed)
}

// WriteLoRAModules writes an F32 LoRA adapter of mods modules, each a
// lora_A of [r, in] (Gaussian, sd 0.02) and a lora_B of [out, r]
// (Gaussian, sd 0.005: smaller, as after training from B = 0), to dir,
// reproducible from seed. Unlike WriteLoRA's, it can be refitted.
func WriteLoRAModules(dir string, mods, in, out, r int, seed uint64) error {
	cfg := fmt.Sprintf(`{"peft_type":"LORA","r":%d,"lora_alpha":%d,"target_modules":["proj"],"base_model_name_or_path":"synthetic"}`, r, 2*r)
	var infos []safetensors.TensorInfo
	for m := range mods {
		pre := fmt.Sprintf("base_model.model.layers.%03d.proj", m)
		infos = append(infos,
			safetensors.TensorInfo{Name: pre + ".lora_A.weight", DType: safetensors.F32, Shape: []int64{int64(r), int64(in)}},
			safetensors.TensorInfo{Name: pre + ".lora_B.weight", DType: safetensors.F32, Shape: []int64{int64(out), int64(r)}})
	}
	return write(dir, cfg, infos, func(i int) float64 { return []float64{0.02, 0.005}[i%2] }, seed)
}

// write writes the adapter config cfg and the tensors infos to dir,
// tensor i of Gaussian values of standard deviation sd(i), drawn in order
// from a generator seeded with seed.
func write(dir, cfg string, infos []safetensors.TensorInfo, sd func(i int) float64, seed uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(cfg), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := safetensors.NewWriter(f, map[string]string{"format": "pt"}, infos)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var vals []float32
	for i, ti := range infos {
		vals = vals[:0]
		for range ti.Shape[0] * ti.Shape[1] {
			vals = append(vals, float32(rng.NormFloat64()*sd(i)))
		}
		if err := w.WriteFloat32(vals); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return f.Close()
}
