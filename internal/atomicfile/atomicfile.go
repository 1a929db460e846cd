// Package atomicfile replaces files so that a reader, or a crash, sees the
// old content or the new, never a part of it: the new content is written
// to a temporary file beside the target, synced, and renamed (or linked)
// into place. It imports only the standard library, so that compress can
// use it too.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// TempPrefix starts the name of every temporary file a write makes, in the
// target's directory: what a crash leaves behind is the files whose names
// start with it.
const TempPrefix = ".tmp-"

// FS is the file layer a write goes through: OS, or in a test one that
// records the calls to replay a crash between any two of them.
type FS interface {
	// CreateTemp creates a new file, mode 0600, as os.CreateTemp does.
	CreateTemp(dir, pattern string) (File, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	// SyncDir fsyncs a directory, making the renames and removals in it
	// durable.
	SyncDir(dir string) error
}

// File is a temporary file being written.
type File interface {
	io.Writer
	Name() string
	Chmod(mode os.FileMode) error
	Sync() error
	Close() error
}

// OS is the real file system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) CreateTemp(dir, pattern string) (File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (osFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error             { return os.Remove(name) }
func (osFS) SyncDir(dir string) error             { return SyncDir(dir) }

// SyncDir fsyncs dir, making the renames and removals in it durable.
// Windows cannot sync a directory; there only opening it can fail.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && runtime.GOOS == "windows" {
		return nil
	}
	return err
}

// Write replaces path with data, mode perm, and syncs its directory so that
// the rename is durable.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteFunc(path, perm, writeBytes(data))
}

// WriteFunc is Write with the content written by write, which sees only
// the temporary file: a failure of write leaves path as it was.
func WriteFunc(path string, perm os.FileMode, write func(io.Writer) error) error {
	if err := Replace(OS, path, perm, write); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// Create writes data to path, mode perm, as Write does, but fails with
// fs.ErrExist if path exists: the new file is linked into place, not
// renamed, so that of two processes creating path at once one wins and
// the other reads what it wrote.
func Create(path string, data []byte, perm os.FileMode) error {
	tmp, err := writeTemp(OS, path, perm, writeBytes(data))
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) { // name path, not the temporary file
			err = le.Err
		}
		return fmt.Errorf("create %s: %w", path, err) // fs.ErrExist if another process linked first
	}
	return SyncDir(filepath.Dir(path))
}

// Replace writes what write writes to a new file beside path through fsys
// (written, chmod perm, fsynced, closed) and renames it over path. It does
// not sync the directory: a caller that writes many files to one directory
// syncs it once at the end (FS.SyncDir).
func Replace(fsys FS, path string, perm os.FileMode, write func(io.Writer) error) error {
	tmp, err := writeTemp(fsys, path, perm, write)
	if err != nil {
		return err
	}
	if err := fsys.Rename(tmp, path); err != nil {
		fsys.Remove(tmp)
		var le *os.LinkError
		if errors.As(err, &le) {
			err = le.Err
		}
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// writeTemp writes a complete, synced temporary file beside path and
// returns its name; on failure it removes it.
func writeTemp(fsys FS, path string, perm os.FileMode, write func(io.Writer) error) (string, error) {
	f, err := fsys.CreateTemp(filepath.Dir(path), TempPrefix+"*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) { // name path, not the temporary file
			err = pe.Err
		}
		return "", fmt.Errorf("create %s: %w", path, err)
	}
	tmp := f.Name()
	err = write(f)
	if err == nil && perm != 0o600 {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fsys.Remove(tmp)
		if pe, ok := err.(*fs.PathError); ok && pe.Path == tmp { // name path, not the temporary file
			err = fmt.Errorf("write %s: %w", path, pe.Err)
		}
		return "", err
	}
	return tmp, nil
}

func writeBytes(data []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}
}
