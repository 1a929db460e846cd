package compress

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// makeOutputDir readies dir for Expand: an existing directory must be empty
// unless overwrite (ErrNotEmpty); a missing one is created with its
// missing parents, which it returns, deepest first, for removeCreated.
func makeOutputDir(dir string, overwrite bool) (created []string, err error) {
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return nil, fmt.Errorf("%s is not a directory", dir)
	case err == nil:
		if overwrite {
			return nil, nil
		}
		empty, err := isEmptyDir(dir)
		if err != nil {
			return nil, err
		}
		if !empty {
			return nil, fmt.Errorf("%w: %s holds files", ErrNotEmpty, dir) // the caller says how to write into it
		}
		return nil, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		removeCreated(created)
		return nil, err
	}
	return created, nil
}

// removeCreated removes the directories makeOutputDir created, deepest
// first, each only if empty.
func removeCreated(dirs []string) {
	for _, d := range dirs {
		if os.Remove(d) != nil {
			return
		}
	}
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); errors.Is(err, io.EOF) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	return false, nil
}
