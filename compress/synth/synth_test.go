package synth

import (
	"testing"

	"github.com/expertd/expertd/compress"
)

func TestWriteLoRALoads(t *testing.T) {
	dir := t.TempDir()
	if err := WriteLoRA(dir, 3<<20, 1); err != nil {
		t.Fatal(err)
	}
	src, err := compress.Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if src.PeftType != "LORA" || src.Params() != 3<<20 || len(src.Tensors) != 3 {
		t.Fatalf("loaded %s, %d params in %d tensors", src.PeftType, src.Params(), len(src.Tensors))
	}
}

func TestWriteLoRAModulesRefits(t *testing.T) {
	dir := t.TempDir()
	if err := WriteLoRAModules(dir, 3, 40, 24, 4, 1); err != nil {
		t.Fatal(err)
	}
	src, err := compress.Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if src.PeftType != "LORA" || src.Params() != 3*4*(40+24) || len(src.Tensors) != 6 {
		t.Fatalf("loaded %s, %d params in %d tensors", src.PeftType, src.Params(), len(src.Tensors))
	}
	if _, err := compress.Compress(src.Tensors, compress.WithRefit(compress.DefaultRefit)); err != nil {
		t.Fatalf("refit: %v", err)
	}
}
