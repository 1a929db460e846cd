package unixfs

import (
	"context"
	"errors"
	"testing"

	cid "github.com/ipfs/go-cid"
)

// dag collects synthetic blocks for Walk.
type dag map[cid.Cid][]byte

func (d dag) node(links ...Link) Link {
	b, l := mkNode(links...)
	d[b.Cid] = b.Data
	return l
}

func TestWalkRawRoot(t *testing.T) {
	data := []byte("small expert")
	root := sumCID(cid.Raw, data)
	l, err := Walk(context.Background(), root, 100, mapGetter(dag{root: data}))
	if err != nil {
		t.Fatal(err)
	}
	if l.Size != uint64(len(data)) || len(l.Leaves) != 1 || l.Leaves[0].Cid != root || len(l.Nodes) != 0 {
		t.Fatalf("layout %+v", l)
	}
	if _, err := Walk(context.Background(), root, 5, mapGetter(dag{root: data})); !errors.Is(err, ErrFileTooLarge) {
		t.Fatalf("maxSize 5: %v", err)
	}
	big := make([]byte, ChunkSize+1)
	bigRoot := sumCID(cid.Raw, big)
	if _, err := Walk(context.Background(), bigRoot, 1<<30, mapGetter(dag{bigRoot: big})); !errors.Is(err, ErrBadLayout) {
		t.Fatalf("raw root over ChunkSize: %v", err)
	}
}

func TestWalkTamperedBlock(t *testing.T) {
	l, err := Build(testInput(3*mib + mib/2))
	if err != nil {
		t.Fatal(err)
	}
	root := l.Nodes[len(l.Nodes)-1]
	bad := append([]byte(nil), root.Data...)
	bad[10] ^= 0x80
	_, err = Walk(context.Background(), l.Root, 1<<30, mapGetter(dag{l.Root: bad}))
	if !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("flipped byte: %v", err)
	}
}

func TestWalkLimitsBeforeFetchingChildren(t *testing.T) {
	d := dag{}
	var level1 []Link
	for range 3 {
		level1 = append(level1, d.node(fullLeaves(LinksPerNode)...))
	}
	root := d.node(level1...)
	gets := 0
	get := func(ctx context.Context, c cid.Cid) ([]byte, error) {
		gets++
		return mapGetter(d)(ctx, c)
	}
	if _, err := Walk(context.Background(), root.Cid, 10*ChunkSize, get); !errors.Is(err, ErrFileTooLarge) {
		t.Fatalf("Walk: %v", err)
	}
	if gets != 1 {
		t.Fatalf("%d gets, want only the root", gets)
	}
	l, err := Walk(context.Background(), root.Cid, root.Size, mapGetter(d))
	if err != nil {
		t.Fatalf("canonical synthetic DAG: %v", err)
	}
	if len(l.Leaves) != 3*LinksPerNode || len(l.Nodes) != 4 {
		t.Fatalf("%d leaves, %d nodes", len(l.Leaves), len(l.Nodes))
	}
}

func TestWalkRejectsNonCanonical(t *testing.T) {
	cases := map[string]func(d dag) Link{
		"dag-pb root for a small file": func(d dag) Link {
			return d.node(fakeLeaf(0, 10), fakeLeaf(1, 10))
		},
		"short leaf not last": func(d dag) Link {
			return d.node(fakeLeaf(0, 10), fakeLeaf(1, ChunkSize))
		},
		"too deep": func(d dag) Link {
			return d.node(d.node(fullLeaves(3)...))
		},
		"leaves above the bottom": func(d dag) Link {
			// Depth 3: the first child, at depth 2, holds leaves. The
			// second is never fetched.
			far := Link{Cid: sumCID(cid.DagProtobuf, nil), Size: LinksPerNode * LinksPerNode * ChunkSize}
			far.Tsize = far.Size + 1
			return d.node(d.node(fullLeaves(LinksPerNode)...), far)
		},
		"split unevenly": func(d dag) Link {
			ls := fullLeaves(LinksPerNode + 1)
			return d.node(d.node(ls[:100]...), d.node(ls[100:]...))
		},
		"child smaller than its link says": func(d dag) Link {
			child := d.node(fullLeaves(LinksPerNode)...)
			child.Size--
			child.Tsize--
			return d.node(child, d.node(fakeLeaf(LinksPerNode, 2)))
		},
	}
	for name, mk := range cases {
		d := dag{}
		root := mk(d)
		_, err := Walk(context.Background(), root.Cid, 1<<40, mapGetter(d))
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, ErrBadLayout) {
			t.Errorf("%s: %v, want ErrBadLayout", name, err)
		}
	}
}

func TestWalkGetterErrors(t *testing.T) {
	l, err := Build(testInput(2 * mib))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Walk(context.Background(), l.Root, 1<<30, mapGetter(dag{})); err == nil {
		t.Fatal("Walk with no blocks succeeded")
	}
	errPeer := errors.New("peer gone")
	get := func(context.Context, cid.Cid) ([]byte, error) { return nil, errPeer }
	if _, err := Walk(context.Background(), l.Root, 1<<30, get); !errors.Is(err, errPeer) {
		t.Fatalf("getter error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Walk(ctx, l.Root, 1<<30, get); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	sum := sumCID(cid.Raw, nil).Hash()
	if _, err := Walk(context.Background(), cid.NewCidV0(sum), 1<<30, get); !errors.Is(err, ErrUnsupportedCID) {
		t.Fatalf("CIDv0 root: %v", err)
	}
}

func TestDepthFor(t *testing.T) {
	for size, want := range map[uint64]int{
		0: 0, ChunkSize: 0, ChunkSize + 1: 1, LinksPerNode * ChunkSize: 1,
		LinksPerNode*ChunkSize + 1: 2, 1<<64 - 1: 6,
	} {
		if got := depthFor(size); got != want {
			t.Errorf("depthFor(%d) = %d, want %d", size, got, want)
		}
	}
}
