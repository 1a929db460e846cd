package safetensors

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// writeShard writes a file with one F32 vector per name, holding value+i.
func writeShard(t *testing.T, path string, names ...string) {
	t.Helper()
	var ts []TensorInfo
	for _, n := range names {
		ts = append(ts, TensorInfo{Name: n, DType: F32, Shape: []int64{3}})
	}
	file := writeFile(t, map[string]string{"format": "pt"}, ts, func(w *Writer, ti TensorInfo) error {
		v := float32(len(ti.Name))
		return w.WriteFloat32([]float32{v, v + 1, v + 2})
	})
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenDirSharded(t *testing.T) {
	dir := t.TempDir()
	writeShard(t, filepath.Join(dir, "model-00001-of-00002.safetensors"), "b", "dd")
	writeShard(t, filepath.Join(dir, "model-00002-of-00002.safetensors"), "a", "ccc", "unlisted")
	index := `{"metadata":{"total_size":60,"format":{"nested":[1]}},"weight_map":{
		"dd":"model-00001-of-00002.safetensors","a":"model-00002-of-00002.safetensors",
		"b":"model-00001-of-00002.safetensors","ccc":"model-00002-of-00002.safetensors"}}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, IndexFile), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var names []string
	for _, ti := range d.Tensors() {
		names = append(names, ti.Name)
	}
	if !slices.Equal(names, []string{"a", "b", "ccc", "dd"}) {
		t.Errorf("tensors %q", names)
	}
	for _, n := range names {
		got, err := d.ReadFloat32(n, nil)
		if err != nil {
			t.Fatal(err)
		}
		v := float32(len(n))
		if !slices.Equal(got, []float32{v, v + 1, v + 2}) {
			t.Errorf("%s = %v", n, got)
		}
		raw, err := d.ReadRaw(n, nil)
		if err != nil || len(raw) != 12 {
			t.Errorf("ReadRaw(%s) = %d bytes, %v", n, len(raw), err)
		}
	}
	if _, err := d.ReadFloat32("unlisted", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadFloat32 of a tensor outside the index: %v, want ErrNotFound", err)
	}
	if _, ok := d.Lookup("ccc"); !ok {
		t.Error("Lookup(ccc) failed")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenDirBadIndex(t *testing.T) {
	tests := []struct {
		name  string
		index string
		want  error
	}{
		{"not JSON", `{"weight_map":`, ErrIndex},
		{"no weight_map", `{"metadata":{}}`, ErrIndex},
		{"weight_map not object", `{"weight_map":[]}`, ErrIndex},
		{"shard not string", `{"weight_map":{"a":1}}`, ErrIndex},
		{"parent dir", `{"weight_map":{"a":"../s.safetensors"}}`, ErrIndex},
		{"subdir", `{"weight_map":{"a":"sub/s.safetensors"}}`, ErrIndex},
		{"absolute", `{"weight_map":{"a":"/etc/passwd"}}`, ErrIndex},
		{"dot", `{"weight_map":{"a":"."}}`, ErrIndex},
		{"empty", `{"weight_map":{"a":""}}`, ErrIndex},
		{"duplicate tensor", `{"weight_map":{"a":"s.safetensors","a":"s.safetensors"}}`, ErrDuplicate},
		{"duplicate weight_map", `{"weight_map":{},"weight_map":{}}`, ErrDuplicate},
		{"tensor not in shard", `{"weight_map":{"a":"s.safetensors","zz":"s.safetensors"}}`, ErrIndex},
		{"missing shard", `{"weight_map":{"a":"gone.safetensors"}}`, os.ErrNotExist},
		{"bad shard", `{"weight_map":{"a":"bad.safetensors"}}`, ErrBadHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeShard(t, filepath.Join(dir, "s.safetensors"), "a")
			if err := os.WriteFile(filepath.Join(dir, "bad.safetensors"), build("{", nil), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, IndexFile), []byte(tt.index), 0o644); err != nil {
				t.Fatal(err)
			}
			if d, err := OpenDir(dir); !errors.Is(err, tt.want) {
				t.Errorf("OpenDir = %v, %v; want %v", d, err, tt.want)
			}
		})
	}
}

func TestOpenDirSingleFile(t *testing.T) {
	dir := t.TempDir()
	writeShard(t, filepath.Join(dir, "adapter_model.safetensors"), "x", "y")
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Tensors()) != 2 {
		t.Errorf("%d tensors, want 2", len(d.Tensors()))
	}
	d.Close()

	// model.safetensors wins over other files.
	writeShard(t, filepath.Join(dir, ModelFile), "m")
	d, err = OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ts := d.Tensors(); len(ts) != 1 || ts[0].Name != "m" {
		t.Errorf("tensors %v, want just m", ts)
	}
	d.Close()

	// Two candidates and no index is ambiguous.
	if err := os.Remove(filepath.Join(dir, ModelFile)); err != nil {
		t.Fatal(err)
	}
	writeShard(t, filepath.Join(dir, "other.safetensors"), "o")
	if _, err := OpenDir(dir); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenDir with two files: %v, want ErrNotFound", err)
	}
	if _, err := OpenDir(t.TempDir()); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenDir of an empty dir: %v, want ErrNotFound", err)
	}
}

func TestOpenDirFixture(t *testing.T) {
	d, err := OpenDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if len(d.Tensors()) != 12 {
		t.Fatalf("%d tensors, want 12", len(d.Tensors()))
	}
	v, err := d.ReadFloat32("base_model.model.blocks.5.mlp.fc2.ia3_l", nil)
	if err != nil || len(v) != 1536 {
		t.Fatalf("ReadFloat32 = %d values, %v", len(v), err)
	}
}
