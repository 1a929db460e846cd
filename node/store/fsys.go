package store

import (
	"io/fs"
	"os"

	"github.com/expertd/expertd/internal/atomicfile"
)

// fileSystem is the file layer of the store's writes: every call that
// creates, renames, removes or fsyncs a file or directory goes through it
// (only the refresh of a block's modification time does not), so a test
// can record their order and replay a crash between any two of them.
// Reads go to the os package directly.
type fileSystem interface {
	atomicfile.FS
	Mkdir(name string, perm fs.FileMode) error
}

// tempFile is a file being written.
type tempFile = atomicfile.File

// osFS is the real file system.
type osFS struct{}

var _ fileSystem = osFS{}

func (osFS) CreateTemp(dir, pattern string) (tempFile, error) {
	return atomicfile.OS.CreateTemp(dir, pattern)
}

func (osFS) Rename(oldpath, newpath string) error      { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                  { return os.Remove(name) }
func (osFS) Mkdir(name string, perm fs.FileMode) error { return os.Mkdir(name, perm) }
func (osFS) SyncDir(dir string) error                  { return atomicfile.SyncDir(dir) }
