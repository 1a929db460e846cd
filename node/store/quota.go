package store

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/expertd/expertd/internal/slogutil"
)

// Usage returns the bytes the quota counts (the distinct blocks of indexed
// experts) and the number of indexed experts.
func (s *Store) Usage() (bytes int64, experts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usage, len(s.entries)
}

// CheckFit returns ErrQuota if an expert of size bytes could not be indexed
// even after evicting every expert that can be, so a fetch can give up
// before downloading it. It returns nil when the quota is unlimited.
func (s *Store) CheckFit(size int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.quota == 0 {
		return nil
	}
	kept := s.keptBytes()
	if kept+size > s.quota {
		return fmt.Errorf("%w: %d bytes do not fit: quota %d, %d held by pinned or open experts", ErrQuota, size, s.quota, kept)
	}
	return nil
}

// keptBytes returns the bytes of the distinct blocks of experts that
// cannot be evicted.
func (s *Store) keptBytes() int64 {
	seen := make(map[string]bool)
	var n int64
	for _, e := range s.entries {
		if evictable(e) {
			continue
		}
		for _, b := range e.blocks {
			if !seen[b.key] {
				seen[b.key] = true
				n += b.size
			}
		}
	}
	return n
}

// evictable reports whether e may be evicted: not pinned, not being read.
func evictable(e *entry) bool { return !e.meta.Pinned && e.readers == 0 }

// plan returns the experts to evict, least recently used first, so that an
// expert made of blocks fits in the quota, or ErrQuota if it cannot fit
// even with every evictable expert gone. It changes nothing. Blocks the
// new expert shares with indexed ones are counted once. s.mu is held.
func (s *Store) plan(blocks []blockRef) ([]*entry, error) {
	if s.quota == 0 {
		return nil, nil
	}
	want := make(map[string]bool, len(blocks))
	usage := s.usage
	for _, b := range blocks {
		if !want[b.key] && s.refs[b.key] == 0 {
			usage += b.size
		}
		want[b.key] = true
	}
	if usage <= s.quota {
		return nil, nil
	}
	var cands []*entry
	for _, e := range s.entries {
		if evictable(e) {
			cands = append(cands, e)
		}
	}
	slices.SortFunc(cands, func(a, b *entry) int {
		return cmp.Or(a.meta.LastUsed.Compare(b.meta.LastUsed), a.meta.Added.Compare(b.meta.Added), cmp.Compare(a.meta.CID, b.meta.CID))
	})
	dropped := make(map[string]int) // block -> references the victims so far hold
	for i, e := range cands {
		for _, b := range e.blocks {
			dropped[b.key]++
			if !want[b.key] && dropped[b.key] == s.refs[b.key] {
				usage -= b.size
			}
		}
		if usage <= s.quota {
			return cands[:i+1], nil
		}
	}
	return nil, fmt.Errorf("%w: needs %d bytes with every unpinned expert evicted, quota %d", ErrQuota, usage, s.quota)
}

// ref counts blocks as used by one more expert.
func (s *Store) ref(blocks []blockRef) {
	for _, b := range blocks {
		if s.refs[b.key] == 0 {
			s.usage += b.size
		}
		s.refs[b.key]++
	}
}

// drop removes e from the index, then the blocks no other expert uses: an
// interruption leaves unreferenced blocks for GC, never an entry whose
// blocks are gone. s.mu is held.
func (s *Store) drop(e *entry) error {
	key := e.meta.CID
	err := s.fs.Remove(filepath.Join(s.expertsDir(), key+entryExt))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: removing entry %s: %w", key, err)
	}
	if err := s.fs.SyncDir(s.expertsDir()); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	delete(s.entries, key)
	for _, b := range e.blocks {
		s.refs[b.key]--
		if s.refs[b.key] > 0 {
			continue
		}
		delete(s.refs, b.key)
		s.usage -= b.size
		s.removeBlock(b.key)
	}
	return nil
}

// discard removes the blocks named by keys that no indexed expert uses:
// what a failed Add wrote, or a fetched expert that does not fit.
func (s *Store) discard(keys []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if s.refs[k] == 0 {
			s.removeBlock(k)
		}
	}
}

// removeBlock deletes a block file; a failure only leaves it to GC.
func (s *Store) removeBlock(key string) {
	_, path := s.blockPath(key)
	if err := s.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("removing block", slogutil.CID(key), slogutil.Err(err))
	}
}
