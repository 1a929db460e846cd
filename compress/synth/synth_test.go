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
