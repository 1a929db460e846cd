package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/expertd/expertd/compress"
)

// loadAdapter reads the adapter in dir (a fine-tuned model over base, if
// set) for compression, its progress on w.
func loadAdapter(w io.Writer, dir, base string) (*compress.Source, error) {
	size := weightsSize(dir)
	m := newMeter(w, "read", dir, inBytes())
	src, err := compress.LoadProgress(dir, base, func(done, total int64) {
		m.Set(done*size/max(total, 1), size) // tensors read, as bytes
	})
	if err != nil {
		m.Fail("failed")
		return nil, err
	}
	m.Done()
	return src, nil
}

// weightsSize is the size of the safetensors files in dir.
func weightsSize(dir string) int64 {
	var n int64
	matches, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil {
			n += st.Size()
		}
	}
	return n
}

// alphaHint suggests --alpha 1 for an IA3 adapter compressed with the
// default alpha: IA3 keeps more of its gain with it (docs/quality.md).
func alphaHint(w io.Writer, peftType string) {
	if strings.EqualFold(peftType, "IA3") {
		fmt.Fprintln(w, "hint: IA3 adapters keep more of their gain with --alpha 1 than with the default auto (docs/quality.md)")
	}
}
