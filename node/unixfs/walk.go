package unixfs

import (
	"context"
	"fmt"
	"math"

	cid "github.com/ipfs/go-cid"
)

// Getter returns the bytes of block c from wherever the caller has them, a
// local store or a peer; Walk verifies them.
type Getter func(ctx context.Context, c cid.Cid) ([]byte, error)

// Walk fetches the root block and every dag-pb node under root through get,
// verifies each against its CID, and returns the file's layout: Nodes as
// Build orders them and the leaves to fetch next, which Walk does not fetch.
// A raw root is a whole file of at most ChunkSize bytes and is its only
// leaf; it too comes through get, so a get that keeps what it fetched spares
// a second fetch.
//
// A root whose file is larger than maxSize fails with ErrFileTooLarge before
// any child is fetched. A DAG that is not exactly what Build gives a file
// with these leaves fails with ErrBadLayout (ErrMalformedNode for a node
// DecodeNode refuses, ErrHashMismatch for a block that is not its CID's),
// so the work Walk does is bounded by maxSize. The leaves' data is still untrusted: check each with
// Leaf.Verify.
func Walk(ctx context.Context, root cid.Cid, maxSize uint64, get Getter) (*Layout, error) {
	if _, err := checkCID(root); err != nil {
		return nil, err
	}
	data, err := fetch(ctx, root, get)
	if err != nil {
		return nil, err
	}
	if root.Prefix().Codec == cid.Raw {
		size := uint64(len(data))
		if size > ChunkSize {
			return nil, fmt.Errorf("%w: raw root %s of %d bytes", ErrBadLayout, root, size)
		}
		if size > maxSize {
			return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFileTooLarge, size, maxSize)
		}
		return &Layout{Root: root, Size: size, Leaves: []Leaf{{Cid: root, Size: size}}}, nil
	}
	n, err := DecodeNode(data)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", root, err)
	}
	if n.FileSize > maxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFileTooLarge, n.FileSize, maxSize)
	}
	if n.FileSize <= ChunkSize {
		return nil, fmt.Errorf("%w: dag-pb root for %d bytes", ErrBadLayout, n.FileSize)
	}
	w := &walker{get: get}
	if err := w.node(ctx, n, depthFor(n.FileSize)); err != nil {
		return nil, err
	}
	w.out.Nodes = append(w.out.Nodes, Block{Cid: root, Data: data})
	want, err := build(&sliceSource{leaves: w.out.Leaves})
	if err != nil {
		return nil, err
	}
	if want.Root != root {
		return nil, fmt.Errorf("%w: %s; its leaves lay out as %s", ErrBadLayout, root, want.Root)
	}
	w.out.Root, w.out.Size = root, n.FileSize
	return &w.out, nil
}

// Verify reports whether data is the content of leaf l: its hash matches
// l.Cid and its length is l.Size.
func (l Leaf) Verify(data []byte) error {
	if err := VerifyBlock(l.Cid, data); err != nil {
		return err
	}
	if uint64(len(data)) != l.Size {
		return fmt.Errorf("%w: leaf %s has %d bytes, its parent says %d", ErrBadLayout, l.Cid, len(data), l.Size)
	}
	return nil
}

// depthFor returns the depth of the balanced DAG of a file of size bytes:
// the fewest levels of LinksPerNode-wide nodes over ChunkSize leaves.
func depthFor(size uint64) int {
	depth := 0
	for span := uint64(ChunkSize); span < size; depth++ {
		if span > math.MaxUint64/LinksPerNode {
			return depth + 1
		}
		span *= LinksPerNode
	}
	return depth
}

// fetch gets block c and verifies it.
func fetch(ctx context.Context, c cid.Cid, get Getter) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := get(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("unixfs: getting %s: %w", c, err)
	}
	if err := VerifyBlock(c, data); err != nil {
		return nil, err
	}
	return data, nil
}

// walker collects leaves and nodes in file order.
type walker struct {
	get Getter
	out Layout
	off uint64
}

// node visits n, a verified node at depth (1 holds leaves): its links must
// all be leaves at depth 1 and all nodes above, each child node covering the
// bytes its link says, and every leaf but the last must be full.
func (w *walker) node(ctx context.Context, n *Node, depth int) error {
	for _, l := range n.Links {
		codec := l.Cid.Prefix().Codec
		if depth == 1 {
			if codec != cid.Raw {
				return fmt.Errorf("%w: dag-pb link %s at the leaf level", ErrBadLayout, l.Cid)
			}
			if k := len(w.out.Leaves); k > 0 && w.out.Leaves[k-1].Size != ChunkSize {
				return fmt.Errorf("%w: leaf %d of %d bytes is not the last", ErrBadLayout, k-1, w.out.Leaves[k-1].Size)
			}
			w.out.Leaves = append(w.out.Leaves, Leaf{Cid: l.Cid, Offset: w.off, Size: l.Size})
			w.off += l.Size
			continue
		}
		if codec != cid.DagProtobuf {
			return fmt.Errorf("%w: raw link %s above the leaf level", ErrBadLayout, l.Cid)
		}
		data, err := fetch(ctx, l.Cid, w.get)
		if err != nil {
			return err
		}
		child, err := DecodeNode(data)
		if err != nil {
			return fmt.Errorf("node %s: %w", l.Cid, err)
		}
		if child.FileSize != l.Size {
			return fmt.Errorf("%w: node %s covers %d bytes, its parent says %d", ErrBadLayout, l.Cid, child.FileSize, l.Size)
		}
		if err := w.node(ctx, child, depth-1); err != nil {
			return err
		}
		w.out.Nodes = append(w.out.Nodes, Block{Cid: l.Cid, Data: data})
	}
	return nil
}
