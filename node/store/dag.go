package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/node/unixfs"
)

// Layout returns the DAG under root as unixfs.Walk finds it in the stored
// blocks: every internal node is read and checked, the leaves are not (a
// raw root, which is its own only leaf, is only looked up). It fails with
// ErrNotFound when a node is missing, ErrTooLarge when the file is larger
// than Options.MaxExpertSize, and as Walk does on a DAG that is not a
// canonical UnixFS file. The root need not be indexed.
func (s *Store) Layout(ctx context.Context, root cid.Cid) (*unixfs.Layout, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if root.Defined() && root.Version() == 1 && root.Prefix().Codec == cid.Raw {
		return s.rawLayout(root)
	}
	get := func(_ context.Context, c cid.Cid) ([]byte, error) { return s.GetBlock(c) }
	l, err := unixfs.Walk(ctx, root, uint64(s.maxSize), get)
	if errors.Is(err, unixfs.ErrFileTooLarge) {
		err = fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store: layout of %s: %w", root, err)
	}
	return l, nil
}

// rawLayout is the layout of a file held in one raw block, from its size.
func (s *Store) rawLayout(root cid.Cid) (*unixfs.Layout, error) {
	key := root.String()
	_, path := s.blockPath(key)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: block %s", ErrNotFound, root)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	size := fi.Size()
	if size > MaxBlockSize {
		return nil, s.dropCorrupt(key, fmt.Errorf("file of %d bytes", size))
	}
	if size > s.maxSize {
		return nil, fmt.Errorf("%w: %s holds %d bytes, limit %d", ErrTooLarge, root, size, s.maxSize)
	}
	return &unixfs.Layout{
		Root:   root,
		Size:   uint64(size),
		Leaves: []unixfs.Leaf{{Cid: root, Size: uint64(size)}},
	}, nil
}

// dagBlocks lists the distinct blocks of l with their sizes.
func dagBlocks(l *unixfs.Layout) []blockRef {
	seen := make(map[string]bool, len(l.Leaves)+len(l.Nodes))
	refs := make([]blockRef, 0, len(l.Leaves)+len(l.Nodes))
	add := func(c cid.Cid, size int64) {
		key := c.String()
		if !seen[key] {
			seen[key] = true
			refs = append(refs, blockRef{key: key, size: size})
		}
	}
	for _, lf := range l.Leaves {
		add(lf.Cid, int64(lf.Size))
	}
	for _, n := range l.Nodes {
		add(n.Cid, int64(len(n.Data)))
	}
	return refs
}

// missing returns the blocks of an expert that are not stored with their
// size, and drops block files of the wrong size, which cannot hold their
// block. The files' content was checked when they were written.
func (s *Store) missing(blocks []blockRef) ([]string, error) {
	var out []string
	for _, b := range blocks {
		_, path := s.blockPath(b.key)
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, b.key)
		case err != nil:
			return nil, fmt.Errorf("store: %w", err)
		case fi.Size() != b.size:
			_ = s.dropCorrupt(b.key, fmt.Errorf("%d bytes, the DAG says %d", fi.Size(), b.size))
			out = append(out, b.key)
		}
	}
	return out, nil
}
