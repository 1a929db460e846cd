//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package store

import (
	"fmt"
	"os"
)

const lockFile = "store.lock"

// lockDir only creates the lock file: this platform has no flock(2), so two
// processes opening one directory are not detected.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return f, nil
}

func unlockDir(f *os.File) error { return f.Close() }
