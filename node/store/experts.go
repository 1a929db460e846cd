package store

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"

	cid "github.com/ipfs/go-cid"
)

// entryExt ends the name of every index entry file: experts/<cid>.json.
const entryExt = ".json"

// Get returns the index entry of the expert under root, or ErrNotFound.
func (s *Store) Get(root cid.Cid) (Meta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[root.String()]
	if !ok {
		return Meta{}, fmt.Errorf("%w: expert %s", ErrNotFound, root)
	}
	return e.meta.clone(), nil
}

// List returns every indexed expert, oldest Added first.
func (s *Store) List() []Meta {
	s.mu.Lock()
	out := make([]Meta, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e.meta.clone())
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Meta) int {
		return cmp.Or(a.Added.Compare(b.Added), cmp.Compare(a.CID, b.CID))
	})
	return out
}

// Pin sets whether the expert under root is pinned, so never evicted.
func (s *Store) Pin(root cid.Cid, pinned bool) error {
	return s.Update(root, func(m *Meta) { m.Pinned = pinned })
}

// Update changes the index entry of the expert under root with f and
// writes it if f changed it. The fields the store sets (CID, Size, Added,
// LastUsed) keep their values whatever f does.
func (s *Store) Update(root cid.Cid, f func(*Meta)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	e, ok := s.entries[root.String()]
	if !ok {
		return fmt.Errorf("%w: expert %s", ErrNotFound, root)
	}
	m := e.meta.clone()
	f(&m)
	m.CID, m.Size, m.Added, m.LastUsed = e.meta.CID, e.meta.Size, e.meta.Added, e.meta.LastUsed
	if reflect.DeepEqual(m, e.meta) {
		return nil
	}
	if err := s.writeEntry(m); err != nil {
		return err
	}
	e.meta = m
	return nil
}

// Remove removes the expert under root from the index, and its blocks that
// no other indexed expert uses, even if it is pinned or being read (its
// readers then fail).
func (s *Store) Remove(root cid.Cid) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	e, ok := s.entries[root.String()]
	if !ok {
		return fmt.Errorf("%w: expert %s", ErrNotFound, root)
	}
	return s.drop(e)
}
