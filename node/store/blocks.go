package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/internal/slogutil"
	"github.com/expertd/expertd/node/unixfs"
)

// PutBlock implements BlockStore. Storing a block that is already present
// refreshes its modification time, from which GC measures a block's age.
func (s *Store) PutBlock(c cid.Cid, data []byte) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(data) > MaxBlockSize {
		return fmt.Errorf("%w: block %s of %d bytes, limit %d", ErrTooLarge, c, len(data), MaxBlockSize)
	}
	if err := unixfs.VerifyBlock(c, data); err != nil {
		return fmt.Errorf("store: put %s: %w", c, err)
	}
	_, err := s.writeBlock(c.String(), data, true)
	return err
}

// GetBlock implements BlockStore.
func (s *Store) GetBlock(c cid.Cid) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	data, err := s.readBlock(c)
	if err != nil {
		return nil, err
	}
	if err := unixfs.VerifyBlock(c, data); err != nil {
		return nil, s.dropCorrupt(c.String(), err)
	}
	return data, nil
}

// HasBlock implements BlockStore.
func (s *Store) HasBlock(c cid.Cid) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	_, path := s.blockPath(c.String())
	switch _, err := os.Stat(path); {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("store: %w", err)
	}
}

// blockPath returns the shard directory and the file of the block whose CID
// string is key.
func (s *Store) blockPath(key string) (dir, path string) {
	dir = filepath.Join(s.blocksDir(), shard(key))
	return dir, filepath.Join(dir, key)
}

// shard returns the next-to-last two characters of a CID string (flatfs's
// next-to-last/2: the last base32 character of a CIDv1 carries only 3 bits).
func shard(key string) string {
	if len(key) < 3 {
		return "_"
	}
	return key[len(key)-3 : len(key)-1]
}

// writeBlock stores data, already checked against key, unless the block is
// present; then it only refreshes its modification time. It reports
// whether it wrote the file. Without syncParent the caller must fsync the
// shard directory before relying on the block.
func (s *Store) writeBlock(key string, data []byte, syncParent bool) (created bool, err error) {
	dir, path := s.blockPath(key)
	if _, err := os.Stat(path); err == nil {
		now := time.Now()
		_ = os.Chtimes(path, now, now) // best effort: only GC's age depends on it
		return false, nil
	}
	switch err := s.fs.Mkdir(dir, 0o700); {
	case err == nil:
		if err := s.fs.SyncDir(s.blocksDir()); err != nil {
			return false, fmt.Errorf("store: %w", err)
		}
	case !errors.Is(err, fs.ErrExist):
		return false, fmt.Errorf("store: %w", err)
	}
	if err := s.writeFileAtomic(dir, key, data, syncParent); err != nil {
		return false, fmt.Errorf("store: writing block %s: %w", key, err)
	}
	return true, nil
}

// readBlock reads block c without checking it: ErrNotFound if absent,
// ErrCorrupt (and the file dropped) if larger than any block can be.
func (s *Store) readBlock(c cid.Cid) ([]byte, error) {
	key := c.String()
	_, path := s.blockPath(key)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: block %s", ErrNotFound, c)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if fi.Size() > MaxBlockSize {
		return nil, s.dropCorrupt(key, fmt.Errorf("file of %d bytes", fi.Size()))
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("store: reading block %s: %w", c, err)
	}
	return data, nil
}

// dropCorrupt removes the file of a block that failed its check, so the
// block can be stored again, and returns the ErrCorrupt to report.
func (s *Store) dropCorrupt(key string, cause error) error {
	_, path := s.blockPath(key)
	if err := s.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Error("corrupt block cannot be removed", slogutil.CID(key), slogutil.Path(path), "cause", cause, slogutil.Err(err))
	} else {
		s.log.Warn("corrupt block removed", slogutil.CID(key), slogutil.Path(path), "cause", cause)
	}
	return fmt.Errorf("%w: %s: %w", ErrCorrupt, key, cause)
}

// storedBlock is one file found under blocks/.
type storedBlock struct {
	key  string
	cid  cid.Cid
	path string
	info fs.FileInfo
}

// walkBlocks calls fn for every block file, in no particular order, and
// returns the paths of files under blocks/ that are not blocks: names that
// are not a CID in its own shard. Temporary files are skipped.
func (s *Store) walkBlocks(ctx context.Context, fn func(b storedBlock) error) (stray []string, err error) {
	shards, err := os.ReadDir(s.blocksDir())
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	for _, sh := range shards {
		if !sh.IsDir() {
			stray = append(stray, filepath.Join(s.blocksDir(), sh.Name()))
			continue
		}
		dir := filepath.Join(s.blocksDir(), sh.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return stray, fmt.Errorf("store: %w", err)
		}
		for _, f := range files {
			if err := ctx.Err(); err != nil {
				return stray, err
			}
			name, path := f.Name(), filepath.Join(dir, f.Name())
			if strings.HasPrefix(name, tmpPrefix) {
				continue
			}
			c, err := cid.Decode(name)
			if err != nil || !f.Type().IsRegular() || c.String() != name || shard(name) != sh.Name() {
				stray = append(stray, path)
				continue
			}
			info, err := f.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile
			}
			if err != nil {
				return stray, fmt.Errorf("store: %w", err)
			}
			if err := fn(storedBlock{key: name, cid: c, path: path, info: info}); err != nil {
				return stray, err
			}
		}
	}
	return stray, nil
}
