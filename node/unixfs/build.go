package unixfs

import (
	"errors"
	"fmt"
	"io"
	"os"

	cid "github.com/ipfs/go-cid"
)

// Leaf is one raw leaf of a file: its CID and the span of the file it holds.
type Leaf struct {
	Cid    cid.Cid
	Offset uint64
	Size   uint64
}

// Layout is the DAG of a file: its root CID and size, its leaves in file
// order, and its internal dag-pb blocks in post-order (every node after its
// children, so the root is last). A file of at most ChunkSize bytes has one
// leaf, which is the root, and no Nodes. Repeated data repeats CIDs: the same
// leaf or node may appear more than once.
type Layout struct {
	Root   cid.Cid
	Size   uint64
	Leaves []Leaf
	Nodes  []Block
}

// Build reads r to EOF and returns the layout kubo's `ipfs add
// --cid-version=1 --raw-leaves --chunker=size-1048576` gives it. It holds
// one chunk at a time: memory grows with the number of leaves, not with
// the file.
func Build(r io.Reader) (*Layout, error) {
	return build(&chunkSource{r: r, buf: make([]byte, ChunkSize)})
}

// BuildFile returns the layout of the file at path, as Build does.
func BuildFile(path string) (*Layout, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("unixfs: %w", err)
	}
	defer f.Close()
	l, err := Build(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// FileCID returns the root CID of the file at path (see Build).
func FileCID(path string) (cid.Cid, error) {
	l, err := BuildFile(path)
	if err != nil {
		return cid.Undef, err
	}
	return l.Root, nil
}

// leafSource yields a file's leaves in order; ok is false after the last.
type leafSource interface {
	next() (l Leaf, ok bool, err error)
}

// chunkSource cuts a reader into ChunkSize leaves as boxo's size splitter
// does: full chunks, then a shorter last one, and none for an empty input.
type chunkSource struct {
	r   io.Reader
	buf []byte
	off uint64
}

func (s *chunkSource) next() (Leaf, bool, error) {
	n, err := io.ReadFull(s.r, s.buf)
	switch {
	case errors.Is(err, io.EOF):
		return Leaf{}, false, nil
	case err != nil && !errors.Is(err, io.ErrUnexpectedEOF):
		return Leaf{}, false, fmt.Errorf("unixfs: reading at offset %d: %w", s.off+uint64(n), err)
	}
	l := Leaf{Cid: sumCID(cid.Raw, s.buf[:n]), Offset: s.off, Size: uint64(n)}
	s.off += uint64(n)
	return l, true, nil
}

// sliceSource yields leaves already known, to rebuild a DAG without its data.
type sliceSource struct{ leaves []Leaf }

func (s *sliceSource) next() (Leaf, bool, error) {
	if len(s.leaves) == 0 {
		return Leaf{}, false, nil
	}
	l := s.leaves[0]
	s.leaves = s.leaves[1:]
	return l, true, nil
}

// builder lays leaves out as boxo's balanced.Layout does.
type builder struct {
	src    leafSource
	peeked *Leaf
	out    Layout
}

// build runs the balanced layout over src: the first leaf is the root; while
// leaves remain, the root becomes the first child of a node one level deeper,
// filled up to LinksPerNode children.
func build(src leafSource) (*Layout, error) {
	b := &builder{src: src}
	root, ok, err := b.leaf()
	if err != nil {
		return nil, err
	}
	if !ok {
		c := sumCID(cid.Raw, nil)
		return &Layout{Root: c, Leaves: []Leaf{{Cid: c}}}, nil
	}
	for depth := 1; ; depth++ {
		more, err := b.more()
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
		root, err = b.fill(&Node{Links: []Link{root}, FileSize: root.Size}, depth)
		if err != nil {
			return nil, err
		}
	}
	b.out.Root, b.out.Size = root.Cid, root.Size
	return &b.out, nil
}

// more reports whether a leaf remains.
func (b *builder) more() (bool, error) {
	if b.peeked != nil {
		return true, nil
	}
	l, ok, err := b.src.next()
	if err != nil || !ok {
		return false, err
	}
	b.peeked = &l
	return true, nil
}

// leaf takes the next leaf, records it and returns the link to it.
func (b *builder) leaf() (Link, bool, error) {
	if ok, err := b.more(); err != nil || !ok {
		return Link{}, false, err
	}
	l := *b.peeked
	b.peeked = nil
	b.out.Leaves = append(b.out.Leaves, l)
	return Link{Cid: l.Cid, Tsize: l.Size, Size: l.Size}, true, nil
}

// fill adds children to n while it has room and leaves remain: leaves at
// depth 1, nodes of depth-1 above. It then encodes n, records the block and
// returns the link to it.
func (b *builder) fill(n *Node, depth int) (Link, error) {
	for len(n.Links) < LinksPerNode {
		more, err := b.more()
		if err != nil {
			return Link{}, err
		}
		if !more {
			break
		}
		var child Link
		if depth == 1 {
			child, _, err = b.leaf()
		} else {
			child, err = b.fill(&Node{}, depth-1)
		}
		if err != nil {
			return Link{}, err
		}
		n.Links = append(n.Links, child)
		n.FileSize += child.Size
	}
	enc := n.appendEncode(nil)
	c := sumCID(cid.DagProtobuf, enc)
	b.out.Nodes = append(b.out.Nodes, Block{Cid: c, Data: enc})
	tsize := uint64(len(enc))
	for _, l := range n.Links {
		tsize += l.Tsize
	}
	return Link{Cid: c, Tsize: tsize, Size: n.FileSize}, nil
}
