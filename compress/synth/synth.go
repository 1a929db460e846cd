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
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := `{"peft_type":"LORA","r":16,"lora_alpha":32,"target_modules":["q","v"],"base_model_name_or_path":"synthetic"}`
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(cfg), 0o644); err != nil {
		return err
	}
	const per = 1 << 20
	var infos []safetensors.TensorInfo
	for i := 0; i*per < params; i++ {
		infos = append(infos, safetensors.TensorInfo{Name: fmt.Sprintf("base_model.model.layers.%04d.lora_A.weight", i), DType: safetensors.F32, Shape: []int64{16, per / 16}})
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
	vals := make([]float32, per)
	for range infos {
		for j := range vals {
			vals[j] = float32(rng.NormFloat64() * 0.02)
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
