package compress

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkMergeModule merges three r16 experts of one 2048 x 2048 module
// into rank 48: TA works on the factors, TIES forms the dense updates and
// runs the randomized SVD.
func BenchmarkMergeModule(b *testing.B) {
	var in []MergeInput
	for i := 0; i < 3; i++ {
		ts := synthLoRA(1, 2048, 16)
		for j := range ts { // a different expert each time
			for k := range ts[j].Tau {
				ts[j].Tau[k] *= float32(1 + i)
			}
		}
		ts[0].Tau[i] = -ts[0].Tau[i]
		in = append(in, MergeInput{Name: fmt.Sprint(i), Source: &Source{PeftType: PeftTypeLoRA,
			Config: `{"peft_type": "LORA", "r": 16, "lora_alpha": 32, "target_modules": ["proj"]}`, Tensors: ts}})
	}
	for _, method := range []string{MergeTA, MergeTIES} {
		b.Run(method, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := Merge(context.Background(), in, MergeOptions{Method: method}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
