package safetensors

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Names of the files OpenDir looks for.
const (
	ModelFile = "model.safetensors"
	IndexFile = "model.safetensors.index.json"
)

// Dir is a read-only view of a model stored in one directory, possibly split
// into shards. Its methods may be called concurrently.
type Dir struct {
	files   []*File
	tensors []TensorInfo // sorted by name; Offset is within the tensor's own file
	owner   []int        // owner[i] indexes files for tensors[i]
}

// OpenDir opens the model in dir: the shards listed by IndexFile if present,
// else ModelFile, else the directory's only *.safetensors file. Every shard is
// parsed, and every tensor the index lists checked to be in its shard, before
// OpenDir returns. Tensors a shard holds but the index does not list are left
// out of the view. Shard names must be plain file names in dir.
func OpenDir(dir string) (*Dir, error) {
	index, err := readIndex(filepath.Join(dir, IndexFile))
	switch {
	case err == nil:
		return openSharded(dir, index)
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	name := ModelFile
	if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if name, err = onlyModel(dir); err != nil {
			return nil, err
		}
	}
	f, err := Open(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	return &Dir{files: []*File{f}, tensors: f.Tensors, owner: make([]int, len(f.Tensors))}, nil
}

// onlyModel returns the name of the only *.safetensors file in dir.
func onlyModel(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var found []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".safetensors") && !e.IsDir() {
			found = append(found, e.Name())
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("%w: %s has no %s or %s, and %d *.safetensors files instead of one",
			ErrNotFound, dir, IndexFile, ModelFile, len(found))
	}
	return found[0], nil
}

// readIndex reads an index file of at most MaxHeaderSize bytes.
func readIndex(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	doc, err := io.ReadAll(io.LimitReader(f, MaxHeaderSize+1))
	if err != nil {
		return nil, err
	}
	if len(doc) > MaxHeaderSize {
		return nil, fmt.Errorf("%w: %s is over the limit of %d bytes", ErrIndex, path, MaxHeaderSize)
	}
	return doc, nil
}

// openSharded opens the shards named by the index document.
func openSharded(dir string, index []byte) (*Dir, error) {
	weights, err := parseIndex(index)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, IndexFile), err)
	}
	d := &Dir{}
	fileIdx := make(map[string]int)
	for _, file := range slices.Compact(slices.Sorted(maps.Values(weights))) {
		f, err := Open(filepath.Join(dir, file))
		if err != nil {
			d.Close()
			return nil, err
		}
		fileIdx[file] = len(d.files)
		d.files = append(d.files, f)
	}
	for _, name := range slices.Sorted(maps.Keys(weights)) {
		file := weights[name]
		t, ok := d.files[fileIdx[file]].Lookup(name)
		if !ok {
			d.Close()
			return nil, fmt.Errorf("%w: tensor %s is listed in %s but missing from %s", ErrIndex, quote(name), IndexFile, quote(file))
		}
		d.tensors = append(d.tensors, t)
		d.owner = append(d.owner, fileIdx[file])
	}
	return d, nil
}

// parseIndex returns the weight_map of an index document, rejecting duplicate
// keys and shard names that are not plain file names in the same directory.
func parseIndex(doc []byte) (map[string]string, error) {
	t := newTokens(doc, ErrIndex)
	if err := t.delim("index", '{'); err != nil {
		return nil, err
	}
	var weights map[string]string
	seen := make(map[string]struct{})
	for t.dec.More() {
		key, err := t.str("index key")
		if err != nil {
			return nil, err
		}
		if _, dup := seen[key]; dup {
			return nil, fmt.Errorf("%w: %s appears twice in the index", ErrDuplicate, quote(key))
		}
		seen[key] = struct{}{}
		if key != "weight_map" {
			if err := t.skip(); err != nil {
				return nil, err
			}
			continue
		}
		if weights, err = t.stringMap("weight_map"); err != nil {
			return nil, err
		}
	}
	if err := t.delim("index", '}'); err != nil {
		return nil, err
	}
	if err := t.end(doc); err != nil {
		return nil, err
	}
	if weights == nil {
		return nil, fmt.Errorf("%w: no weight_map", ErrIndex)
	}
	for name, file := range weights {
		if file == "" || file == "." || file == ".." || file != filepath.Base(file) || !filepath.IsLocal(file) || strings.ContainsAny(file, `/\`) {
			return nil, fmt.Errorf("%w: tensor %s: shard %s is not a file name in the index's directory", ErrIndex, quote(name), quote(file))
		}
	}
	return weights, nil
}

// Tensors lists every tensor, sorted by name. Offsets are within each
// tensor's own shard. Do not modify the returned slice.
func (d *Dir) Tensors() []TensorInfo { return d.tensors }

// Lookup returns the tensor with the given name.
func (d *Dir) Lookup(name string) (TensorInfo, bool) {
	i, ok := d.find(name)
	if !ok {
		return TensorInfo{}, false
	}
	return d.tensors[i], true
}

// ReadFloat32 reads the named tensor converted to float32, like File.ReadFloat32.
func (d *Dir) ReadFloat32(name string, dst []float32) ([]float32, error) {
	i, ok := d.find(name)
	if !ok {
		return nil, fmt.Errorf("%w: tensor %s", ErrNotFound, quote(name))
	}
	return d.files[d.owner[i]].ReadFloat32(d.tensors[i], dst)
}

// ReadFloat32At reads part of the named tensor, like File.ReadFloat32At.
func (d *Dir) ReadFloat32At(name string, start int64, dst []float32) error {
	i, ok := d.find(name)
	if !ok {
		return fmt.Errorf("%w: tensor %s", ErrNotFound, quote(name))
	}
	return d.files[d.owner[i]].ReadFloat32At(d.tensors[i], start, dst)
}

// ReadRaw reads the named tensor's bytes, like File.ReadRaw.
func (d *Dir) ReadRaw(name string, dst []byte) ([]byte, error) {
	i, ok := d.find(name)
	if !ok {
		return nil, fmt.Errorf("%w: tensor %s", ErrNotFound, quote(name))
	}
	return d.files[d.owner[i]].ReadRaw(d.tensors[i], dst)
}

func (d *Dir) find(name string) (int, bool) {
	return slices.BinarySearchFunc(d.tensors, name, func(t TensorInfo, name string) int {
		return cmp.Compare(t.Name, name)
	})
}

// Close closes every shard.
func (d *Dir) Close() error {
	var errs []error
	for _, f := range d.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

var (
	_ io.Closer = (*Dir)(nil)
	_ io.Closer = (*File)(nil)
)
