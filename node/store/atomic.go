package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/expertd/expertd/internal/atomicfile"
)

// tmpPrefix starts the name of every file being written; no real name
// starts with it.
const tmpPrefix = atomicfile.TempPrefix

// writeFileAtomic writes data to dir/name through a temporary file in dir:
// write, fsync, rename (atomicfile.Replace), mode 0600. With syncParent it
// also fsyncs dir so the rename itself is durable; callers that write many
// files to one directory sync it once at the end instead.
func (s *Store) writeFileAtomic(dir, name string, data []byte, syncParent bool) error {
	err := atomicfile.Replace(s.fs, filepath.Join(dir, name), 0o600, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err == nil && syncParent {
		err = s.fs.SyncDir(dir)
	}
	return err
}

// removeTemp removes the temporary files a crash left under root and
// returns how many it removed. Only Open calls it, under the directory
// lock, when no write can be in flight.
func (s *Store) removeTemp(root string) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() && strings.HasPrefix(d.Name(), tmpPrefix) {
			if err := s.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("store: removing temporary files: %w", err)
	}
	return n, nil
}
