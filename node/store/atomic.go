package store

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// tmpPrefix starts the name of every file being written; no real name
// starts with it.
const tmpPrefix = ".tmp-"

// writeFileAtomic writes data to dir/name through a temporary file in dir:
// write, fsync, rename. With syncParent it also fsyncs dir so the rename
// itself is durable; callers that write many files to one directory sync it
// once at the end instead.
func (s *Store) writeFileAtomic(dir, name string, data []byte, syncParent bool) error {
	f, err := s.fs.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.fs.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		s.fs.Remove(tmp)
		return err
	}
	if syncParent {
		return s.fs.SyncDir(dir)
	}
	return nil
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
