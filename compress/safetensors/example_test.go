package safetensors_test

import (
	"bytes"
	"fmt"
	"log"

	"github.com/expertd/expertd/compress/safetensors"
)

func Example() {
	var buf bytes.Buffer
	w, err := safetensors.NewWriter(&buf, map[string]string{"format": "pt"}, []safetensors.TensorInfo{
		{Name: "lora_A", DType: safetensors.BF16, Shape: []int64{2, 2}},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := w.WriteFloat32([]float32{1, -0.5, 3.14159, 0}); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	f, err := safetensors.Parse(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		log.Fatal(err)
	}
	t, _ := f.Lookup("lora_A")
	v, err := f.ReadFloat32(t, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(f.Metadata["format"], t.DType, t.Shape, v)
	// Output: pt BF16 [2 2] [1 -0.5 3.140625 0]
}
