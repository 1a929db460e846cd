package compress

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/expertd/expertd/compress/safetensors"
	"github.com/expertd/expertd/internal/atomicfile"
)

// ExpandOptions configures Expand.
type ExpandOptions struct {
	// DType of the written tensors: "" or "source" keeps each tensor's
	// source dtype; otherwise F32, F16 or BF16 (any case).
	DType string
	// BaseDir is the base model a residual container needs.
	BaseDir string
	// Reader options (decoder limits).
	ReaderOptions []ReaderOption
	// Progress, if set, is called as chunks are written with the elements
	// done and the total.
	Progress func(done, total int64)
	// MaxOutput bounds the bytes written (OutputBytes of the header): 0
	// means DefaultMaxOutput, a negative value no limit.
	MaxOutput int64
	// Overwrite lets Expand write into a directory that holds files,
	// replacing those it writes; without it such a directory is refused
	// with ErrNotEmpty.
	Overwrite bool
	// Accept, if set, is given the validated header before anything is
	// written; an error it returns stops Expand and is returned.
	Accept func(*Header) error

	statfs      statfsFunc // free space query; diskSpace when nil (tests set it)
	streamAbove int64      // payloads larger are streamed; 0: decodeAhead/2 (tests set it)
}

// ParseDType maps a --dtype flag value to a safetensors dtype ("" for source).
func ParseDType(s string) (string, error) {
	switch strings.ToUpper(s) {
	case "", "SOURCE":
		return "", nil
	case "F32", "F16", "BF16":
		return strings.ToUpper(s), nil
	}
	return "", fmt.Errorf("%w: dtype %q: want source, f32, f16 or bf16", ErrOption, s)
}

// Expand decodes a container from r into outDir as a PEFT adapter directory
// (the config verbatim and adapter_model.safetensors) or, for a residual, a
// model directory (config.json and model.safetensors = base + tau_hat).
//
// Before anything is written, the header is validated, given to
// o.Accept, and its declared output (OutputBytes) checked against
// o.MaxOutput (ErrOutputLimit) and the free space of outDir's filesystem
// (ErrNoSpace); outDir must be empty or missing unless o.Overwrite
// (ErrNotEmpty). Then the tensors are decoded, converted and written in
// chunks of ChunkElements, in memory that does not grow with them. Files
// are written under temporary names in outDir and renamed when complete,
// so a failure leaves no partial file under a real name, and removes the
// directories Expand created. Nothing is written outside outDir.
func Expand(r io.Reader, outDir string, o ExpandOptions) (_ *Header, err error) {
	dtype, err := ParseDType(o.DType)
	if err != nil {
		return nil, err
	}
	cr, err := NewReader(r, o.ReaderOptions...)
	if err != nil {
		return nil, err
	}
	h := cr.Header()
	base, err := openBase(h, o.BaseDir)
	if err != nil {
		return nil, err
	}
	if base != nil {
		defer base.Close()
	}
	if o.Accept != nil {
		if err := o.Accept(h); err != nil {
			return nil, err
		}
	}
	plan, err := weightsPlan(h, dtype)
	if err != nil {
		return nil, err
	}
	need, err := outputBytes(h, plan)
	if err != nil {
		return nil, err
	}
	if err := CheckOutput(need, o.MaxOutput); err != nil {
		return nil, err
	}
	statfs := o.statfs
	if statfs == nil {
		statfs = diskSpace
	}
	if err := checkSpace(outDir, need, statfs); err != nil {
		return nil, err
	}
	created, err := makeOutputDir(outDir, o.Overwrite)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			removeCreated(created)
		}
	}()
	return h, writeOutput(cr, h, plan, base, outDir, o)
}

// openBase opens the base model a residual needs, or returns nil for an
// adapter, after checking that the base holds every tensor as floats of the
// same element count.
func openBase(h *Header, dir string) (*safetensors.Dir, error) {
	switch {
	case h.Base != "" && dir == "":
		return nil, fmt.Errorf("%w: the container is a residual against base %s; give --base", ErrBase, h.Base)
	case h.Base == "" && dir != "":
		return nil, fmt.Errorf("%w: the container is a %s adapter, not a residual; drop --base", ErrBase, h.PeftType)
	case h.Base == "":
		return nil, nil
	}
	base, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("base: %w", err)
	}
	for i := range h.Tensors {
		if err := checkBaseTensor(base, &h.Tensors[i]); err != nil {
			base.Close()
			return nil, err
		}
	}
	return base, nil
}

// writeOutput writes the weights and the config into outDir, each through
// a synced temporary file renamed into place: a crash leaves the old file
// or the new one, never part of one.
func writeOutput(cr *Reader, h *Header, plan *safetensors.Plan, base *safetensors.Dir, outDir string, o ExpandOptions) error {
	weights := AdapterWeightsFile
	if h.PeftType == PeftTypeFull {
		weights = ModelWeightsFile
	}
	var total int64
	for i := range h.Tensors {
		total += h.Tensors[i].Elements()
	}
	tmp, err := os.CreateTemp(outDir, ".expand-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	err = writeWeights(tmp, cr, h, plan, base, total, o)
	if err == nil {
		err = tmp.Sync() // on disk before the rename makes it the weights
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if h.ConfigName != "" { // validated: exactly ConfigFileFor(h.PeftType)
		if err := writeFileAtomic(filepath.Join(outDir, ConfigFileFor(h.PeftType)), h.Config); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp.Name(), filepath.Join(outDir, weights)); err != nil {
		return err
	}
	return atomicfile.SyncDir(outDir)
}

// checkBaseTensor checks that the base model has t, as floats, with as
// many elements.
func checkBaseTensor(base *safetensors.Dir, t *TensorHeader) error {
	bi, ok := base.Lookup(t.Name)
	if !ok {
		return fmt.Errorf("%w: tensor %q is not in the base model", ErrBase, t.Name)
	}
	if !bi.DType.IsFloat() || bi.NumElements() != t.Elements() {
		return fmt.Errorf("%w: tensor %q is %s of %d elements in the base, %d in the container", ErrBase, t.Name, bi.DType, bi.NumElements(), t.Elements())
	}
	return nil
}

// writeFileAtomic replaces path, mode 0644, with data (atomicfile).
func writeFileAtomic(path string, data string) error {
	return atomicfile.WriteFunc(path, 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, data) // no copy of a config of megabytes
		return err
	})
}
