package compress

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// statfsFunc reports the bytes available to an unprivileged user and the
// size of the filesystem holding dir.
type statfsFunc func(dir string) (avail, size int64, err error)

// checkSpace refuses need bytes of output in dir (or, if it does not exist
// yet, its nearest existing parent) unless the filesystem keeps 1% of its
// size free after them, syncthing's default minimum: a container must not
// fill the disk the daemon and the inference server share. Where free space
// cannot be queried, nothing is refused.
func checkSpace(dir string, need int64, statfs statfsFunc) error {
	if statfs == nil {
		return nil
	}
	d, err := existingDir(dir)
	if err != nil {
		return err
	}
	avail, size, err := statfs(d)
	if err != nil {
		return nil // unknown
	}
	reserve := size / 100
	if need > avail-reserve {
		return fmt.Errorf("%w: %s of output declared, %s has %s free (keeping 1%% of the filesystem, %s, free)",
			ErrNoSpace, humanBytes(need), d, humanBytes(max(avail, 0)), humanBytes(reserve))
	}
	return nil
}

// existingDir returns dir or its nearest existing parent.
func existingDir(dir string) (string, error) {
	d := filepath.Clean(dir)
	for {
		if _, err := os.Stat(d); err == nil {
			return d, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return d, nil
		}
		d = parent
	}
}
