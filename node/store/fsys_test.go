package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// This file holds the fault injection of the store's file layer: recFS
// records the calls the store makes, in order; crashModel replays them and
// says what a power cut after any prefix of them could leave on disk.

// opKind is one kind of call to the file layer.
type opKind string

const (
	opCreate  opKind = "create"
	opWrite   opKind = "write"
	opSync    opKind = "fsync"
	opClose   opKind = "close"
	opRename  opKind = "rename"
	opRemove  opKind = "remove"
	opMkdir   opKind = "mkdir"
	opSyncDir opKind = "fsync-dir"
)

// op is one recorded call. Paths are relative to the recorder's root.
type op struct {
	kind opKind
	path string
	to   string // rename's new path
	data []byte // write's bytes
}

func (o op) String() string {
	switch o.kind {
	case opRename:
		return fmt.Sprintf("%s %s -> %s", o.kind, o.path, o.to)
	case opWrite:
		return fmt.Sprintf("%s %s (%d bytes)", o.kind, o.path, len(o.data))
	}
	return fmt.Sprintf("%s %s", o.kind, o.path)
}

// recFS is the real file layer, recording every call that changes the disk.
// With failAt > 0 the failAt-th call fails instead (with errInjected), and
// every call after it goes through as usual.
type recFS struct {
	osFS
	root string

	mu     sync.Mutex
	ops    []op
	calls  int
	failAt int
}

var errInjected = errors.New("injected fault")

// take returns the calls recorded since the last take.
func (r *recFS) take() []op {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops = nil
	return ops
}

// record notes a call about to be made, or returns errInjected if it is
// the one to fail.
func (r *recFS) record(o op) error {
	rel := func(p string) string {
		if p == "" {
			return ""
		}
		rp, err := filepath.Rel(r.root, p)
		if err != nil {
			panic(err)
		}
		return rp
	}
	o.path, o.to, o.data = rel(o.path), rel(o.to), slices.Clone(o.data)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls == r.failAt {
		return fmt.Errorf("%s: %w", o, errInjected)
	}
	r.ops = append(r.ops, o)
	return nil
}

func (r *recFS) CreateTemp(dir, pattern string) (tempFile, error) {
	f, err := r.osFS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if err := r.record(op{kind: opCreate, path: f.Name()}); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &recFile{tempFile: f, r: r}, nil
}

func (r *recFS) Rename(oldpath, newpath string) error {
	if err := r.record(op{kind: opRename, path: oldpath, to: newpath}); err != nil {
		return err
	}
	return r.osFS.Rename(oldpath, newpath)
}

func (r *recFS) Remove(name string) error {
	if err := r.record(op{kind: opRemove, path: name}); err != nil {
		return err
	}
	return r.osFS.Remove(name)
}

func (r *recFS) Mkdir(name string, perm fs.FileMode) error {
	if err := r.osFS.Mkdir(name, perm); err != nil {
		return err // an existing directory changes nothing: not recorded
	}
	if err := r.record(op{kind: opMkdir, path: name}); err != nil {
		os.Remove(name)
		return err
	}
	return nil
}

func (r *recFS) SyncDir(dir string) error {
	if err := r.record(op{kind: opSyncDir, path: dir}); err != nil {
		return err
	}
	return r.osFS.SyncDir(dir)
}

// recFile records the calls on a temporary file.
type recFile struct {
	tempFile
	r *recFS
}

func (f *recFile) Write(p []byte) (int, error) {
	if err := f.r.record(op{kind: opWrite, path: f.Name(), data: p}); err != nil {
		return 0, err
	}
	return f.tempFile.Write(p)
}

func (f *recFile) Sync() error {
	if err := f.r.record(op{kind: opSync, path: f.Name()}); err != nil {
		return err
	}
	return f.tempFile.Sync()
}

func (f *recFile) Close() error {
	if err := f.r.record(op{kind: opClose, path: f.Name()}); err != nil {
		f.tempFile.Close()
		return err
	}
	return f.tempFile.Close()
}

// inode is one file's bytes: those written, and how many of them an fsync
// made durable.
type inode struct {
	data   []byte
	synced int
}

// crashModel is a directory tree as the page cache holds it (files, dirs)
// and as a power cut would leave it (durable, durableDirs), following
// POSIX: a file's bytes are durable once the file is fsynced, a name
// created, renamed or removed in a directory once that directory is
// fsynced. The root "." always exists.
type crashModel struct {
	files, durable    map[string]*inode
	dirs, durableDirs map[string]bool
	created           map[string]*inode // files by the name they were created under
}

// newCrashModel starts from the tree under root, all of it durable.
func newCrashModel(t *testing.T, root string) *crashModel {
	t.Helper()
	m := &crashModel{files: map[string]*inode{}, durable: map[string]*inode{}, dirs: map[string]bool{},
		durableDirs: map[string]bool{}, created: map[string]*inode{}}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			m.dirs[rel], m.durableDirs[rel] = true, true
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		ino := &inode{data: b, synced: len(b)}
		m.files[rel], m.durable[rel] = ino, ino
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// apply replays one call.
func (m *crashModel) apply(o op) {
	switch o.kind {
	case opCreate:
		ino := &inode{}
		m.files[o.path], m.created[o.path] = ino, ino
	case opWrite:
		ino := m.created[o.path]
		ino.data = append(ino.data, o.data...)
	case opSync:
		ino := m.created[o.path]
		ino.synced = len(ino.data)
	case opRename:
		m.files[o.to] = m.files[o.path]
		delete(m.files, o.path)
	case opRemove:
		delete(m.files, o.path)
	case opMkdir:
		m.dirs[o.path] = true
	case opSyncDir:
		for _, names := range []map[string]*inode{m.durable, m.files} {
			for p := range names {
				if filepath.Dir(p) == o.path {
					if ino, ok := m.files[p]; ok {
						m.durable[p] = ino
					} else {
						delete(m.durable, p)
					}
				}
			}
		}
		for d := range m.dirs {
			if filepath.Dir(d) == o.path {
				m.durableDirs[d] = true
			}
		}
	}
}

// write writes to dir what a power cut would leave. Strict: only the
// durable names survive. Otherwise every name does (a file system that
// commits its metadata first). Either way a file keeps its fsynced bytes
// and half of those written after them: an unsynced write is torn.
func (m *crashModel) write(t *testing.T, dir string, strict bool) {
	t.Helper()
	files, dirs := m.files, m.dirs
	if strict {
		files, dirs = m.durable, m.durableDirs
	}
	exists := func(p string) bool {
		for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
			if !dirs[d] {
				return false
			}
		}
		return true
	}
	for d := range dirs {
		if exists(d) {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
	for p, ino := range files {
		if !exists(p) {
			continue
		}
		kept := ino.synced + (len(ino.data)-ino.synced)/2
		if err := os.WriteFile(filepath.Join(dir, p), ino.data[:kept], 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// checkOrder checks the rules a crash-safe write follows in ops, the calls
// one successful store call made: a file is fsynced after its last write
// and before it is renamed; every name created, renamed or removed (but a
// block's removal, which only leaves an orphan if lost) is made durable by
// an fsync of its directory before the call returns; and an index entry is
// renamed into place only after everything written under blocks/ before it
// is durable, so an entry never outlives its blocks.
func checkOrder(ops []op) error {
	written := map[string]bool{} // temp files written since their last fsync
	synced := map[string]bool{}  // temp files fsynced
	pending := map[string]op{}   // directories with changes not yet durable
	for _, o := range ops {
		switch o.kind {
		case opWrite:
			written[o.path] = true
		case opSync:
			written[o.path], synced[o.path] = false, true
		case opRename:
			if written[o.path] || !synced[o.path] {
				return fmt.Errorf("%s: not fsynced after its last write", o)
			}
			if strings.HasPrefix(o.to, filepath.Join("store", "experts")+"/") {
				for d, p := range pending {
					if strings.HasPrefix(d, filepath.Join("store", "blocks")) || d == "store" {
						return fmt.Errorf("%s: before %s is durable", o, p)
					}
				}
			}
			pending[filepath.Dir(o.to)] = o
		case opMkdir:
			pending[filepath.Dir(o.path)] = o
		case opRemove:
			if !strings.HasPrefix(o.path, filepath.Join("store", "blocks")+"/") {
				pending[filepath.Dir(o.path)] = o
			}
		case opSyncDir:
			delete(pending, o.path)
		}
	}
	for _, p := range pending {
		return fmt.Errorf("%s: not durable when the call returned (no fsync of its directory)", p)
	}
	return nil
}
