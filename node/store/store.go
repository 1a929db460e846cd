package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxExpertSize is the largest container a Store accepts by default.
const DefaultMaxExpertSize = 4 << 30

// Options configures Open.
type Options struct {
	// Quota bounds the bytes of the distinct blocks of indexed experts;
	// 0 means unlimited.
	Quota int64
	// Logger receives what Open repairs and what eviction removes;
	// slog.Default() when nil.
	Logger *slog.Logger
	// MaxExpertSize bounds one container; DefaultMaxExpertSize when 0.
	MaxExpertSize int64

	now func() time.Time // the clock; time.Now when nil (tests set it)
	fs  fileSystem       // the file layer of writes; the real one when nil (tests set it)
}

// Store is the on-disk block store and expert index described in the
// package documentation. It is safe for concurrent use: a mutex guards the
// index, and block files, immutable once written, are read without it.
type Store struct {
	dir     string
	quota   int64
	maxSize int64
	log     *slog.Logger
	now     func() time.Time
	fs      fileSystem
	lock    *os.File
	closed  atomic.Bool

	mu      sync.Mutex
	entries map[string]*entry // by root CID string
	refs    map[string]int    // block CID string -> number of entries listing it
	usage   int64             // bytes of the blocks in refs
}

// entry is one indexed expert.
type entry struct {
	meta    Meta
	blocks  []blockRef // the distinct blocks of its DAG; nil if it could not be walked
	readers int        // open readers; an expert being read is not evicted
}

// blockRef is one block of an expert's DAG and its size.
type blockRef struct {
	key  string // CID string
	size int64
}

// Open opens the store in dir, creating it if needed. It takes an exclusive
// lock on the directory (ErrLocked if another process holds it), removes
// temporary files a crash left behind and loads the index, rebuilding from
// the blocks any entry that cannot be read (see the package documentation).
func Open(dir string, o Options) (*Store, error) {
	s := &Store{
		dir:     dir,
		quota:   o.Quota,
		maxSize: o.MaxExpertSize,
		log:     o.Logger,
		now:     o.now,
		fs:      o.fs,
		entries: make(map[string]*entry),
		refs:    make(map[string]int),
	}
	if s.quota < 0 {
		return nil, fmt.Errorf("store: negative quota %d", s.quota)
	}
	if s.maxSize <= 0 {
		s.maxSize = DefaultMaxExpertSize
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.fs == nil {
		s.fs = osFS{}
	}
	for _, d := range []string{dir, s.blocksDir(), s.expertsDir()} {
		if err := s.mkdir(d); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	lock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, err
	}
	s.lock = lock
	if err := s.load(context.Background()); err != nil {
		unlockDir(lock)
		return nil, err
	}
	return s, nil
}

// mkdir creates directory d and its missing parents, fsyncing the parent
// of each directory it creates: a block written and fsynced in a new store
// is lost in a crash if the directory it went into is.
func (s *Store) mkdir(d string) error {
	switch fi, err := os.Stat(d); {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return fmt.Errorf("%s: not a directory", d)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	parent := filepath.Dir(d)
	if err := s.mkdir(parent); err != nil {
		return err
	}
	if err := s.fs.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return s.fs.SyncDir(parent)
}

// Close releases the directory lock. Readers returned by Open fail after
// Close; calling Close twice returns ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return ErrClosed
	}
	return unlockDir(s.lock)
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }

// DefaultDir returns the default data directory: $XDG_DATA_HOME/expertd, or
// ~/.local/share/expertd when XDG_DATA_HOME is unset or not absolute.
func DefaultDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "expertd"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("store: no data directory: %w", err)
	}
	return filepath.Join(home, ".local", "share", "expertd"), nil
}

func (s *Store) blocksDir() string  { return filepath.Join(s.dir, "blocks") }
func (s *Store) expertsDir() string { return filepath.Join(s.dir, "experts") }

// check returns ErrClosed once the store is closed.
func (s *Store) check() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}
