package store

import (
	"context"
	"fmt"
	"io"
	"sync"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/internal/slogutil"
	"github.com/expertd/expertd/node/unixfs"
)

// Open returns the container bytes of the indexed expert under root
// (ErrNotFound if it is not indexed). Each leaf is read and checked against
// its CID and size as the reader reaches it, so a missing or corrupt block
// shows up as a Read error (wrapping ErrNotFound or ErrCorrupt). Open counts
// as a use of the expert for eviction, and the expert is not evicted while
// the reader is open; the caller must Close it.
func (s *Store) Open(ctx context.Context, root cid.Cid) (io.ReadCloser, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	key := root.String()
	if err := s.acquire(key); err != nil {
		return nil, err
	}
	l, err := s.Layout(ctx, root)
	if err != nil {
		s.release(key)
		return nil, err
	}
	return &reader{ctx: ctx, s: s, leaves: l.Leaves, key: key}, nil
}

// acquire marks the expert under key as used now and counts one more
// reader of it. Persisting the use time is best effort.
func (s *Store) acquire(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok {
		return fmt.Errorf("%w: expert %s", ErrNotFound, key)
	}
	e.readers++
	m := e.meta.clone()
	m.LastUsed = s.now()
	if err := s.writeEntry(m); err != nil {
		s.log.Warn("recording use", slogutil.CID(key), slogutil.Err(err))
	}
	e.meta = m
	return nil
}

// release ends one reader of the expert under key.
func (s *Store) release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok && e.readers > 0 {
		e.readers--
	}
}

// reader reads a file leaf by leaf, checking each.
type reader struct {
	ctx    context.Context // Read has no context of its own
	s      *Store
	leaves []unixfs.Leaf
	buf    []byte
	key    string // the expert whose reader count to release; "" for none
	once   sync.Once
	err    error
}

func (r *reader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if len(r.leaves) == 0 {
			return 0, io.EOF
		}
		r.buf, r.err = r.next()
		if r.err != nil {
			return 0, r.err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// next reads and checks the next leaf.
func (r *reader) next() ([]byte, error) {
	if err := r.ctx.Err(); err != nil {
		return nil, err
	}
	if err := r.s.check(); err != nil {
		return nil, err
	}
	lf := r.leaves[0]
	r.leaves = r.leaves[1:]
	data, err := r.s.readBlock(lf.Cid)
	if err != nil {
		return nil, err
	}
	if err := lf.Verify(data); err != nil {
		return nil, r.s.dropCorrupt(lf.Cid.String(), err)
	}
	return data, nil
}

// Close releases the expert for eviction. It always returns nil.
func (r *reader) Close() error {
	r.once.Do(func() {
		if r.key != "" {
			r.s.release(r.key)
		}
		r.err = fmt.Errorf("store: read after Close")
		r.buf = nil
	})
	return nil
}
