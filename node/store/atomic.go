package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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
func writeFileAtomic(dir, name string, data []byte, syncParent bool) error {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
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
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if syncParent {
		return syncDir(dir)
	}
	return nil
}

// syncDir fsyncs a directory, making renames and removals in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeTemp removes the temporary files a crash left under root and
// returns how many it removed. Only Open calls it, under the directory
// lock, when no write can be in flight.
func removeTemp(root string) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() && strings.HasPrefix(d.Name(), tmpPrefix) {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
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
