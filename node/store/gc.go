package store

import (
	"context"
	"os"
	"time"
)

// GC removes the blocks that no indexed expert uses and that were last put
// more than olderThan ago, and returns how many it removed. Such blocks
// belong to fetches that never completed; a fetch still in progress should
// have put its blocks more recently than olderThan, or it will find them
// gone at Complete (ErrIncomplete) and must fetch them again. The store
// never calls GC itself.
func (s *Store) GC(ctx context.Context, olderThan time.Duration) (removed int, err error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	cutoff := time.Now().Add(-olderThan)
	var old []storedBlock
	_, err = s.walkBlocks(ctx, func(b storedBlock) error {
		if b.info.ModTime().Before(cutoff) && !s.referenced(b.key) {
			old = append(old, b)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range old {
		if s.refs[b.key] > 0 {
			continue // indexed meanwhile
		}
		if fi, err := os.Stat(b.path); err != nil || !fi.ModTime().Before(cutoff) {
			continue // gone, or put again meanwhile
		}
		if err := s.fs.Remove(b.path); err == nil {
			removed++
		}
	}
	if removed > 0 {
		s.log.Info("removed orphan blocks", "blocks", removed, "older_than", olderThan)
	}
	return removed, nil
}
