package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/viper"

	"github.com/expertd/expertd/compress"
)

// What a command checks of its arguments before it starts, and how it says
// what is wrong with them: naming the argument once, as the user gave it.

// floatSetting reads the number key (compress.density), set by its flag or
// its EXPERTD_* variable; a flag is checked as it is parsed, so a value that
// is not a number came from the variable.
func floatSetting(v *viper.Viper, key string) (float64, error) {
	s := strings.TrimSpace(v.GetString(key))
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%s: not a number", envName(key), s)
	}
	return f, nil
}

// envName is the environment variable of a config key.
func envName(key string) string {
	return "EXPERTD_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// checkOutputFile says why a file cannot be created at path, if it can be
// seen before any work: its directory is missing or not one, or path is a
// directory.
func checkOutputFile(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no directory %s", path, dir)
	case err != nil:
		return fmt.Errorf("%s: %w", path, withoutPath(err))
	case !st.IsDir():
		return fmt.Errorf("%s: %s is not a directory", path, dir)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory (give a file name)", path)
	}
	return nil
}

// openInput opens the file a command reads; its error does not name it (the
// command's does) and refuses a directory.
func openInput(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, withoutPath(err)
	}
	if st, err := f.Stat(); err != nil || st.IsDir() {
		f.Close()
		if err != nil {
			return nil, withoutPath(err)
		}
		return nil, errors.New("is a directory (give a file)")
	}
	return f, nil
}

// checkContainer reads the .cpeft file at path through, checking every
// checksum.
func checkContainer(path string) error {
	f, err := openInput(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = compress.Verify(bufio.NewReaderSize(f, 1<<20))
	return err
}

// withoutPath is err without the operation and path an *fs.PathError
// adds ("open /x: no such file or directory" is "no such file or
// directory"), for a message that names the path already.
func withoutPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
