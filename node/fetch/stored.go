package fetch

import "sync"

// storedLeaves is the set of leaves one fetch has stored, shared by its
// requests: when two providers send the same leaf (a stolen tail the
// victim had already sent), a copy that arrives after the first one was
// stored is verified and counted but not written again. A leaf counts as
// stored only once its write succeeded: two copies arriving at once are
// both written (harmless), and a failed write leaves it missing. The zero
// value is empty; a nil set stores every leaf.
type storedLeaves struct {
	mu   sync.Mutex
	held map[uint64]bool
}

// has reports whether leaf i was stored.
func (s *storedLeaves) has(i uint64) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[i]
}

// add records that leaf i was stored, and reports whether it was news.
func (s *storedLeaves) add(i uint64) bool {
	if s == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[i] {
		return false
	}
	if s.held == nil {
		s.held = map[uint64]bool{}
	}
	s.held[i] = true
	return true
}
