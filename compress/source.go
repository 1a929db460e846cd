package compress

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"

	"github.com/expertd/expertd/compress/safetensors"
	"github.com/expertd/expertd/internal/atomicfile"
)

// ReadSource decodes a whole container into a Source: the decompressed
// task vector (values minus each tensor's offset), the config and the
// metadata, as Load would have read the decompressed adapter. The reader
// options bound what a hostile container can make it allocate
// (WithMaxElements; 4 bytes per element).
func ReadSource(r io.Reader, opts ...ReaderOption) (*Source, error) {
	cr, err := NewReader(r, opts...)
	if err != nil {
		return nil, err
	}
	h := cr.Header()
	src := &Source{PeftType: h.PeftType, ConfigName: h.ConfigName, Config: h.Config,
		Metadata: maps.Clone(h.Metadata), SourceBytes: h.SourceBytes, Base: h.Base, Density: h.Density}
	for {
		t, err := cr.Next()
		if errors.Is(err, io.EOF) {
			return src, nil
		}
		if err != nil {
			return nil, err
		}
		vals, err := cr.Values(nil)
		if err != nil {
			return nil, err
		}
		if t.Offset != 0 {
			for i := range vals {
				vals[i] -= t.Offset
			}
		}
		src.Tensors = append(src.Tensors, Tensor{Name: t.Name, DType: t.DType, Shape: append([]int64(nil), t.Shape...), Tau: vals, Offset: t.Offset})
	}
}

// WriteDir writes src uncompressed as a PEFT adapter directory: its config
// verbatim and adapter_model.safetensors with tau + offset in dtype (""
// keeps each tensor's own). Residuals (FULL) are refused: they need a base.
// Files are renamed into place when complete.
func WriteDir(src *Source, dir, dtype string) error {
	dt, err := ParseDType(dtype)
	if err != nil {
		return err
	}
	if src.PeftType == PeftTypeFull || src.Base != "" {
		return fmt.Errorf("%w: a residual is written as a model against its base; compress it instead", ErrInput)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	infos := make([]safetensors.TensorInfo, len(src.Tensors))
	for i, t := range src.Tensors {
		d := t.DType
		if dt != "" {
			d = dt
		}
		infos[i] = safetensors.TensorInfo{Name: t.Name, DType: safetensors.DType(d), Shape: t.Shape}
	}
	err = atomicfile.WriteFunc(filepath.Join(dir, AdapterWeightsFile), 0o644, func(w io.Writer) error {
		bw := newBufWriter(w)
		sw, err := safetensors.NewWriter(bw, src.Metadata, infos)
		if err != nil {
			return err
		}
		var buf []float32
		for _, t := range src.Tensors {
			buf = resize(buf, len(t.Tau))
			for i, v := range t.Tau {
				buf[i] = v + t.Offset
			}
			if err := sw.WriteFloat32(buf); err != nil {
				return err
			}
		}
		if err := sw.Close(); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return err
	}
	name := src.ConfigName
	if name == "" {
		name = AdapterConfigFile
	}
	if name != AdapterConfigFile && name != ModelConfigFile { // never a name from the input
		return fmt.Errorf("%w: config name %q", ErrInput, name)
	}
	return writeFileAtomic(filepath.Join(dir, name), src.Config)
}
