package compress

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"

	"github.com/expertd/expertd/compress/safetensors"
)

// File names of a PEFT adapter directory and of a full model.
const (
	AdapterConfigFile  = "adapter_config.json"
	AdapterWeightsFile = "adapter_model.safetensors"
	ModelConfigFile    = "config.json"
	ModelWeightsFile   = "model.safetensors"
	PeftTypeFull       = "FULL" // a full fine-tuning residual against a base model
	maxConfigBytes     = 16 << 20
)

// Source is an expert read from disk, ready for Compress.
type Source struct {
	PeftType    string
	ConfigName  string // file the config came from, restored on decompression
	Config      string // verbatim
	Metadata    map[string]string
	Tensors     []Tensor
	SourceBytes int64  // bytes of the weights file(s)
	Base        string // base-model fingerprint for residuals
	// Density is the codec density the tensors were decoded from
	// (ReadSource); 0 when they were never compressed.
	Density float64
}

// Params is the number of elements of all tensors.
func (s *Source) Params() int64 {
	var n int64
	for _, t := range s.Tensors {
		n += int64(len(t.Tau))
	}
	return n
}

// Load reads an expert directory. A PEFT adapter (adapter_config.json +
// adapter_model.safetensors) gives tau = parameters, or parameters - 1 for
// IA3. With baseDir set, dir is a fine-tuned model and tau = fine-tuned -
// base per tensor.
func Load(dir, baseDir string) (*Source, error) { return LoadProgress(dir, baseDir, nil) }

// LoadProgress is Load that calls progress, if set, after each tensor with
// the tensors read and their total.
func LoadProgress(dir, baseDir string, progress func(done, total int64)) (*Source, error) {
	if progress == nil {
		progress = func(int64, int64) {}
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	if baseDir != "" {
		if err := checkDir(baseDir); err != nil {
			return nil, fmt.Errorf("base %s: %w", baseDir, err)
		}
		return loadResidual(dir, baseDir, progress)
	}
	cfg, err := readConfig(filepath.Join(dir, AdapterConfigFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: no %s in it (for a fine-tuned model, give --base)", ErrUnknownDir, AdapterConfigFile)
		}
		return nil, err
	}
	var pc struct {
		PeftType string `json:"peft_type"`
	}
	if err := json.Unmarshal([]byte(cfg), &pc); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInput, filepath.Join(dir, AdapterConfigFile), err)
	}
	if pc.PeftType == "" {
		return nil, fmt.Errorf("%w: %s has no peft_type", ErrInput, filepath.Join(dir, AdapterConfigFile))
	}
	path := filepath.Join(dir, AdapterWeightsFile)
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src := &Source{PeftType: pc.PeftType, ConfigName: AdapterConfigFile, Config: cfg, Metadata: f.Metadata}
	if st, err := os.Stat(path); err == nil {
		src.SourceBytes = st.Size()
	}
	var offset float32
	if pc.PeftType == "IA3" {
		offset = 1
	}
	for _, ti := range f.Tensors {
		if !ti.DType.IsFloat() {
			return nil, fmt.Errorf("%w: %s: tensor %q has dtype %s; only float tensors can be compressed", ErrInput, path, ti.Name, ti.DType)
		}
	}
	src.Tensors = make([]Tensor, len(f.Tensors))
	var mu sync.Mutex // progress is called by one goroutine at a time
	done := int64(0)
	err = forEach(len(f.Tensors), poolSize(len(f.Tensors), 0, 0), func(_, i int) error {
		ti := f.Tensors[i]
		vals, err := f.ReadFloat32(ti, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if offset != 0 {
			for i := range vals {
				vals[i] -= offset
			}
		}
		src.Tensors[i] = Tensor{Name: ti.Name, DType: string(ti.DType), Shape: ti.Shape, Tau: vals, Offset: offset}
		mu.Lock()
		done++
		progress(done, int64(len(f.Tensors)))
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return src, nil
}

// checkDir says, without naming it (the caller does), why dir is not a
// directory to read.
func checkDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("no such directory")
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return pe.Err // permission denied, ...
		}
		return err
	case !st.IsDir():
		return fmt.Errorf("%w: it is a file (give the directory that holds the adapter)", ErrUnknownDir)
	}
	return nil
}

func readConfig(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.Size() > maxConfigBytes {
		return "", fmt.Errorf("%w: %s is %d bytes (max %d)", ErrLimit, path, st.Size(), maxConfigBytes)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if !json.Valid(b) {
		return "", fmt.Errorf("%w: %s is not valid JSON", ErrInput, path)
	}
	return string(b), nil
}

// loadResidual reads a fine-tuned model and its base: tau = ft - base.
func loadResidual(dir, baseDir string, progress func(done, total int64)) (*Source, error) {
	ft, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer ft.Close()
	base, err := safetensors.OpenDir(baseDir)
	if err != nil {
		return nil, fmt.Errorf("base: %w", err)
	}
	defer base.Close()
	src := &Source{PeftType: PeftTypeFull, Metadata: map[string]string{"format": "pt"}}
	if cfg, err := readConfig(filepath.Join(dir, ModelConfigFile)); err == nil {
		src.ConfigName, src.Config = ModelConfigFile, cfg
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	fp := newFingerprint()
	var bv []float32
	for _, ti := range ft.Tensors() {
		if !ti.DType.IsFloat() {
			return nil, fmt.Errorf("%w: %s: tensor %q has dtype %s; only float tensors can be compressed", ErrInput, dir, ti.Name, ti.DType)
		}
		bi, ok := base.Lookup(ti.Name)
		if !ok {
			return nil, fmt.Errorf("%w: tensor %q is not in the base model %s", ErrBase, ti.Name, baseDir)
		}
		if numElements(bi.Shape) != numElements(ti.Shape) || len(bi.Shape) != len(ti.Shape) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, base %v", ErrBase, ti.Name, ti.Shape, bi.Shape)
		}
		vals, err := ft.ReadFloat32(ti.Name, nil)
		if err != nil {
			return nil, err
		}
		if bv, err = base.ReadFloat32(ti.Name, bv); err != nil {
			return nil, fmt.Errorf("base: %w", err)
		}
		fp.add(ti.Name, bv)
		for i := range vals {
			vals[i] -= bv[i]
		}
		src.Tensors = append(src.Tensors, Tensor{Name: ti.Name, DType: string(ti.DType), Shape: ti.Shape, Tau: vals})
		src.SourceBytes += ti.Size
		progress(int64(len(src.Tensors)), int64(len(ft.Tensors())))
	}
	src.Base = fp.sum()
	return src, nil
}

// fingerprint identifies the base tensors a residual was taken against:
// SHA-256 over each used tensor's name and float32 values, in name order.
// A tensor is hashed at once (add) or in chunks (begin, write, end).
type fingerprint struct {
	h   []byte
	cur hash.Hash // the tensor being hashed
	buf []byte
}

func newFingerprint() *fingerprint { return &fingerprint{} }

func (f *fingerprint) add(name string, vals []float32) {
	f.begin(name)
	f.write(vals)
	f.end()
}

func (f *fingerprint) begin(name string) {
	f.cur = sha256.New()
	if f.h != nil {
		f.cur.Write(f.h)
	}
	f.cur.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(name))))
	f.cur.Write([]byte(name))
}

func (f *fingerprint) write(vals []float32) {
	if f.buf == nil {
		f.buf = make([]byte, 0, 1<<16)
	}
	for i := 0; i < len(vals); {
		buf := f.buf[:0]
		for ; i < len(vals) && len(buf) < cap(buf); i++ {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(vals[i]))
		}
		f.cur.Write(buf)
	}
}

func (f *fingerprint) end() { f.h, f.cur = f.cur.Sum(nil), nil }

func (f *fingerprint) sum() string { return "sha256:" + hex.EncodeToString(f.h) }
