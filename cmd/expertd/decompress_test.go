package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expertd/expertd/compress"
)

const attacks = "../../compress/testdata/attack"

// TestDecompressOutputDir: decompress refuses a directory holding files
// unless --force, never touches the files that are not the adapter's, and
// leaves no directory it made when it fails.
func TestDecompressOutputDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "x.cpeft")
	if _, err := runCLI(t, "compress", fixture, "-o", file); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".bashrc"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := runCLI(t, "decompress", file, "-o", home)
	if !errors.Is(err, compress.ErrNotEmpty) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("into a directory holding files: %v", err)
	}
	if ents, _ := os.ReadDir(home); len(ents) != 1 {
		t.Fatalf("%d entries after a refused decompress", len(ents))
	}
	if _, err := runCLI(t, "decompress", file, "-o", home, "--force"); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(home, ".bashrc")); string(b) != "mine" {
		t.Fatal("--force touched a file decompress does not write")
	}

	out := filepath.Join(dir, "new", "out")
	for _, c := range []struct {
		args []string
		want error
	}{
		{[]string{filepath.Join(attacks, "zeros-2gib.cpeft"), "--max-output", "1GiB"}, compress.ErrOutputLimit},
		{[]string{filepath.Join(attacks, "zeros-64gib.cpeft")}, compress.ErrOutputLimit},
		{[]string{filepath.Join(attacks, "config-traversal.cpeft")}, compress.ErrCorrupt},
		{[]string{file, "--max-output", "1KiB"}, compress.ErrOutputLimit},
	} {
		_, err := runCLI(t, append([]string{"decompress", "-o", out}, c.args...)...)
		if !errors.Is(err, c.want) {
			t.Errorf("%v: got %v, want %v", c.args, err, c.want)
		}
		if errors.Is(err, compress.ErrOutputLimit) && !strings.Contains(err.Error(), "--max-output") {
			t.Errorf("%v: the error does not name the limit: %v", c.args, err)
		}
		if _, err := os.Stat(filepath.Dir(out)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%v: a failed decompress left %s", c.args, filepath.Dir(out))
		}
	}
	// A container that fails halfway leaves no directory behind either.
	data, _ := os.ReadFile(file)
	data[len(data)-10] ^= 0xff
	bad := filepath.Join(dir, "bad.cpeft")
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "decompress", bad, "-o", out); !errors.Is(err, compress.ErrChecksum) {
		t.Fatalf("corrupt: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(out)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed decompress left %s", filepath.Dir(out))
	}
	if _, err := runCLI(t, "decompress", file, "-o", out, "--max-output", "lots"); err == nil {
		t.Fatal("--max-output lots: no error")
	}
}

func TestCheckOutputDir(t *testing.T) {
	dir := t.TempDir()
	if err := checkOutputDir(filepath.Join(dir, "missing"), false); err != nil {
		t.Fatal(err)
	}
	if err := checkOutputDir(dir, false); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "f"), nil, 0o644)
	if err := checkOutputDir(dir, false); !errors.Is(err, compress.ErrNotEmpty) {
		t.Fatalf("non-empty: %v", err)
	}
	if err := checkOutputDir(dir, true); err != nil {
		t.Fatalf("force: %v", err)
	}
}
