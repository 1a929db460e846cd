package fetch

import "sync"

// storedLeaves is the set of leaves one fetch has stored, shared by its
// requests: when two providers send the same leaf (a stolen tail the
// victim had already sent), the second copy is verified and counted but
// not written again. The zero value is empty; a nil set stores every leaf.
type storedLeaves struct {
	mu   sync.Mutex
	held map[uint64]bool
}

// claim reports whether leaf i is not stored yet, and if so marks it: the
// caller stores it, or releases it when it could not.
func (s *storedLeaves) claim(i uint64) bool {
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

// release unmarks leaf i, whose store failed.
func (s *storedLeaves) release(i uint64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, i)
}
