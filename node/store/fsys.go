package store

import (
	"io"
	"io/fs"
	"os"
)

// fileSystem is the file layer of the store's writes: every call that
// creates, renames, removes or fsyncs a file or directory goes through it
// (only the refresh of a block's modification time does not), so a test
// can record their order and replay a crash between any two of them.
// Reads go to the os package directly.
type fileSystem interface {
	// CreateTemp creates a new file in dir as os.CreateTemp does.
	CreateTemp(dir, pattern string) (tempFile, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	Mkdir(name string, perm fs.FileMode) error
	// SyncDir fsyncs a directory, making the renames and removals in it
	// durable.
	SyncDir(dir string) error
}

// tempFile is a file being written.
type tempFile interface {
	io.Writer
	Name() string
	Sync() error
	Close() error
}

// osFS is the real file system.
type osFS struct{}

var _ fileSystem = osFS{}

func (osFS) CreateTemp(dir, pattern string) (tempFile, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (osFS) Rename(oldpath, newpath string) error      { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                  { return os.Remove(name) }
func (osFS) Mkdir(name string, perm fs.FileMode) error { return os.Mkdir(name, perm) }

func (osFS) SyncDir(dir string) error {
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
