package compress

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestExpandFullFilesystem expands onto a real 8 MiB tmpfs (it needs root
// to mount one, and is skipped otherwise): a container declaring 16 MiB is
// refused before a byte is written; a real adapter fits.
func TestExpandFullFilesystem(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=8m"); err != nil {
		t.Skipf("cannot mount a tmpfs (%v)", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	var buf bytes.Buffer
	if _, err := Write(&buf, loraHeader(), []Coded{zeros("w", "F32", 4<<20)}); err != nil {
		t.Fatal(err)
	}
	_, err := Expand(bytes.NewReader(buf.Bytes()), filepath.Join(dir, "bomb"), ExpandOptions{})
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("16 MiB onto 8 MiB: %v", err)
	}
	t.Logf("%d-byte container: %v", buf.Len(), err)
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 || st.Bfree != st.Blocks {
		t.Fatalf("%d entries, %d of %d blocks free after a refused expand", len(ents), st.Bfree, st.Blocks)
	}
	if _, err := Expand(bytes.NewReader(fixtureContainer(t, "c-ia3")), filepath.Join(dir, "ok"), ExpandOptions{}); err != nil {
		t.Fatalf("a small adapter: %v", err)
	}
}
