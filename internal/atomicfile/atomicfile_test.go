package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	for _, s := range []string{"one", "two, longer"} {
		if err := Write(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != s {
			t.Fatalf("read %q, want %q", b, s)
		}
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
	if err := Write(filepath.Join(dir, "no", "f"), []byte("x"), 0o600); err == nil {
		t.Error("a write into a missing directory succeeded")
	}
}

func TestWriteFuncFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := Write(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFunc(p, 0o644, func(w io.Writer) error {
		w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the writer's", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("read %q after a failed write", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
}

// TestErrorsNamePath: a failure to create, write, sync, rename or link
// names the file being replaced, never its temporary file.
func TestErrorsNamePath(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no", "f")
	err := Write(missing, []byte("x"), 0o600)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) || strings.Contains(err.Error(), TempPrefix) {
		t.Fatalf("err = %v, want one naming %s, not the temporary file", err, missing)
	}
	p := filepath.Join(dir, "f")
	err = WriteFunc(p, 0o600, func(w io.Writer) error {
		w.(*os.File).Close() // the next write fails with a *fs.PathError
		_, err := w.Write([]byte("x"))
		return err
	})
	if err == nil || !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), TempPrefix) {
		t.Fatalf("err = %v, want one naming %s, not the temporary file", err, p)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d", "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = Write(filepath.Join(dir, "d"), []byte("x"), 0o600) // a rename over a directory that is not empty
	if err == nil || strings.Contains(err.Error(), TempPrefix) {
		t.Fatalf("rename over a directory: err = %v", err)
	}
	if err := Create(filepath.Join(dir, "f2"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = Create(filepath.Join(dir, "f2"), []byte("y"), 0o600)
	if !errors.Is(err, fs.ErrExist) || strings.Contains(err.Error(), TempPrefix) {
		t.Fatalf("Create over a file: err = %v", err)
	}
}

func TestCreate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := Create(p, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Create(p, []byte("second"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create: err = %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "first" {
		t.Fatalf("read %q, want the first", b)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
}
