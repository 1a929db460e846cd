package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/internal/slogutil"
	"github.com/expertd/expertd/node/unixfs"
)

// Add stores the container read from r and indexes it with m: the publish
// path. It cuts r into the blocks unixfs.Build lays out, stores each one as
// it is read (holding about two chunks in memory), then indexes the expert
// under its root CID, which it returns; m.CID, Size, Added and LastUsed are
// set by the store, and the zero descriptive fields of m are filled from
// the container header. A container larger than Options.MaxExpertSize fails
// with ErrTooLarge.
//
// Indexing may evict unpinned experts (see the package documentation); if
// the expert cannot fit, Add fails with ErrQuota. On any error the blocks
// Add wrote are removed again unless an indexed expert uses them. Adding
// an expert already indexed keeps its entry, fills its zero fields from m,
// pins it if m.Pinned, and counts as a use.
func (s *Store) Add(ctx context.Context, r io.Reader, m Meta) (cid.Cid, error) {
	if err := s.check(); err != nil {
		return cid.Undef, err
	}
	c := &chunker{ctx: ctx, s: s, r: r, buf: make([]byte, 0, unixfs.ChunkSize), dirs: make(map[string]bool)}
	root, err := c.add(m)
	if err != nil {
		s.discard(c.created)
		return cid.Undef, err
	}
	return root, nil
}

// AddFile adds the container at path, as Add does.
func (s *Store) AddFile(ctx context.Context, path string, m Meta) (cid.Cid, error) {
	f, err := os.Open(path)
	if err != nil {
		return cid.Undef, fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	c, err := s.Add(ctx, f, m)
	if err != nil {
		return cid.Undef, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Complete indexes the expert under root whose blocks are already stored,
// put there by PutBlock as a fetch received them: the fetch path. It walks
// the stored DAG (ErrNotFound if an internal node is missing), checks that
// every leaf is stored (ErrIncomplete otherwise, and nothing changes, so the
// fetch can get what is missing and call Complete again), then indexes the
// expert as Add does. If the expert cannot fit it fails with ErrQuota and
// removes the expert's blocks that no indexed expert uses.
func (s *Store) Complete(ctx context.Context, root cid.Cid, m Meta) error {
	l, err := s.Layout(ctx, root)
	if err != nil {
		return err
	}
	err = s.commit(ctx, l, m)
	if errors.Is(err, ErrQuota) {
		blocks := dagBlocks(l)
		keys := make([]string, len(blocks))
		for i, b := range blocks {
			keys[i] = b.key
		}
		s.discard(keys)
	}
	return err
}

// commit indexes the expert laid out by l, whose blocks are stored, with
// m: it fills m from the container header, then under the lock checks that
// every block is still there, makes room and writes the entry.
func (s *Store) commit(ctx context.Context, l *unixfs.Layout, m Meta) error {
	m = m.clone()
	if h, err := s.header(ctx, l); err == nil {
		m.fill(MetaFromHeader(h))
	} else {
		s.log.Debug("expert is not a readable container", slogutil.CID(l.Root), slogutil.Err(err))
	}
	blocks := dagBlocks(l)
	key := l.Root.String()

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	miss, err := s.missing(blocks)
	if err != nil {
		return err
	}
	if len(miss) > 0 {
		return fmt.Errorf("%w: %s lacks %d of its %d blocks, %s first", ErrIncomplete, key, len(miss), len(blocks), miss[0])
	}
	now := s.now()
	if e, ok := s.entries[key]; ok {
		merged := e.meta.clone()
		merged.fill(m)
		merged.Pinned = merged.Pinned || m.Pinned
		merged.Requested = merged.Requested || m.Requested
		merged.LastUsed = now
		if err := s.writeEntry(merged); err != nil {
			return err
		}
		e.meta = merged
		if e.blocks == nil { // indexed while incomplete; counted from now on, evicting nothing
			e.blocks = blocks
			s.ref(blocks)
		}
		return nil
	}
	victims, err := s.plan(blocks)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	for _, v := range victims {
		if err := s.drop(v); err != nil {
			return err
		}
		s.log.Info("evicted expert", slogutil.CID(v.meta.CID), slogutil.Name(v.meta.Name), slogutil.Bytes(v.meta.Size),
			"last_used", v.meta.LastUsed, "for", key)
	}
	m.CID, m.Size, m.Added, m.LastUsed = key, int64(l.Size), now, now
	if err := s.writeEntry(m); err != nil {
		// The entry may be in place already (its directory's fsync
		// failed): gone with the blocks the caller now removes, it
		// would name an expert that cannot be read.
		if rerr := s.fs.Remove(filepath.Join(s.expertsDir(), key+entryExt)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			s.log.Error("store: entry of a failed index left", "cid", key, "err", rerr)
		}
		return err
	}
	s.entries[key] = &entry{meta: m, blocks: blocks}
	s.ref(blocks)
	return nil
}

// header reads the container header of the stored expert laid out by l.
func (s *Store) header(ctx context.Context, l *unixfs.Layout) (*compress.Header, error) {
	r := &reader{ctx: ctx, s: s, leaves: l.Leaves}
	cr, err := compress.NewReader(r)
	if err != nil {
		return nil, err
	}
	return cr.Header(), nil
}

// writeEntry writes m's index entry file atomically.
func (s *Store) writeEntry(m Meta) error {
	data, err := encodeMeta(m)
	if err != nil {
		return err
	}
	if err := s.writeFileAtomic(s.expertsDir(), m.CID+entryExt, data, true); err != nil {
		return fmt.Errorf("store: writing entry %s: %w", m.CID, err)
	}
	return nil
}

// chunker is the reader unixfs.Build consumes during Add: it passes r
// through and stores every ChunkSize bytes as a raw leaf as they go by.
type chunker struct {
	ctx     context.Context // Read has no context of its own
	s       *Store
	r       io.Reader
	buf     []byte
	total   int64
	leaves  []cid.Cid
	created []string        // blocks this Add wrote
	dirs    map[string]bool // shard directories to fsync
	err     error           // the first failed store, returned by every Read after it
}

// add runs the whole of Add but the cleanup.
func (c *chunker) add(m Meta) (cid.Cid, error) {
	l, err := unixfs.Build(c)
	if err == nil {
		err = c.err
	}
	if err != nil {
		return cid.Undef, fmt.Errorf("store: add: %w", err)
	}
	if len(c.buf) > 0 || len(c.leaves) == 0 { // the last, short leaf, or the empty file
		if err := c.flush(); err != nil {
			return cid.Undef, err
		}
	}
	if len(c.leaves) != len(l.Leaves) {
		return cid.Undef, fmt.Errorf("store: add: stored %d leaves, the layout has %d", len(c.leaves), len(l.Leaves))
	}
	for i, lf := range l.Leaves {
		if c.leaves[i] != lf.Cid {
			return cid.Undef, fmt.Errorf("store: add: leaf %d stored as %s, laid out as %s", i, c.leaves[i], lf.Cid)
		}
	}
	for _, n := range l.Nodes {
		if err := c.put(n.Cid.String(), n.Data); err != nil {
			return cid.Undef, err
		}
	}
	for dir := range c.dirs {
		if err := c.s.fs.SyncDir(dir); err != nil {
			return cid.Undef, fmt.Errorf("store: %w", err)
		}
	}
	if err := c.s.commit(c.ctx, l, m); err != nil {
		return cid.Undef, err
	}
	return l.Root, nil
}

// Read passes r through, storing the chunks it fills. A failure to store
// one sticks: io.ReadFull, which Build reads with, drops an error that
// comes with a full buffer.
func (c *chunker) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.total += int64(n)
	if c.total > c.s.maxSize {
		return n, fmt.Errorf("%w: container over %d bytes", ErrTooLarge, c.s.maxSize)
	}
	for data := p[:n]; len(data) > 0; {
		k := copy(c.buf[len(c.buf):cap(c.buf)], data)
		c.buf, data = c.buf[:len(c.buf)+k], data[k:]
		if len(c.buf) == cap(c.buf) {
			if c.err = c.flush(); c.err != nil {
				return n, c.err
			}
		}
	}
	return n, err
}

// flush stores the buffered bytes as a raw leaf.
func (c *chunker) flush() error {
	d := sha256.Sum256(c.buf)
	h, err := mh.Encode(d[:], mh.SHA2_256)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	leaf := cid.NewCidV1(cid.Raw, h)
	if err := c.put(leaf.String(), c.buf); err != nil {
		return err
	}
	c.leaves = append(c.leaves, leaf)
	c.buf = c.buf[:0]
	return nil
}

// put writes one block whose CID it computed itself, so it needs no check.
func (c *chunker) put(key string, data []byte) error {
	created, err := c.s.writeBlock(key, data, false)
	if err != nil {
		return err
	}
	if created {
		c.created = append(c.created, key)
		dir, _ := c.s.blockPath(key)
		c.dirs[dir] = true
	}
	return nil
}
