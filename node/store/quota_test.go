package store

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/expert"
	"github.com/expertd/expertd/node/unixfs"
)

func indexed(s *Store, c cid.Cid) bool {
	_, err := s.Get(c)
	return err == nil
}

func TestEvictionOrderAndPins(t *testing.T) {
	const size = 300 << 10
	e := newEnv(t, 1<<20) // room for three
	s := e.open()
	names := "abcdefgh"
	roots := make(map[byte]cid.Cid)
	put := func(n byte) {
		roots[n] = add(t, s, testutil.RandomBytes(size, uint64(n)), Meta{Metadata: expert.Metadata{Name: string(n)}})
	}
	wantIndexed := func(want string) {
		t.Helper()
		got := ""
		for i := range len(names) {
			if r, ok := roots[names[i]]; ok && indexed(s, r) {
				got += string(names[i])
			}
		}
		if got != want {
			t.Fatalf("indexed %q, want %q", got, want)
		}
		for n, r := range roots {
			if ok, _ := s.HasBlock(r); ok != indexed(s, r) {
				t.Fatalf("expert %c: block stored %v, indexed %v", n, ok, !ok)
			}
		}
		if u, k := s.Usage(); u != int64(k)*size || u > 1<<20 {
			t.Fatalf("Usage = %d, %d", u, k)
		}
	}
	put('a')
	put('b')
	put('c')
	readAll(t, s, roots['a']) // a is now more recent than b
	put('d')
	wantIndexed("acd")
	if err := s.Pin(roots['c'], true); err != nil {
		t.Fatal(err)
	}
	put('e') // LRU: c (pinned), a, d
	wantIndexed("cde")
	put('f')
	wantIndexed("cef")

	// An expert being read is not evicted, however old.
	rc, err := s.Open(t.Context(), roots['e'])
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, s, roots['f'])
	readAll(t, s, roots['f']) // e is the least recently used, but open
	put('g')
	wantIndexed("ceg")
	rc.Close()
	put('h') // e is free to go now
	wantIndexed("cgh")
	if m, _ := s.Get(roots['c']); !m.Pinned {
		t.Fatal("c lost its pin")
	}
}

func TestEvictionKeepsSharedBlocks(t *testing.T) {
	shared := testutil.RandomBytes(unixfs.ChunkSize, 1)
	x := append(bytes.Clone(shared), testutil.RandomBytes(unixfs.ChunkSize, 2)...)
	y := append(bytes.Clone(shared), testutil.RandomBytes(unixfs.ChunkSize, 3)...)
	lx, ly := layout(t, x), layout(t, y)
	nodeX, nodeY := int64(len(lx.Nodes[0].Data)), int64(len(ly.Nodes[0].Data))
	both := 3*unixfs.ChunkSize + nodeX + nodeY // the shared leaf once
	z := testutil.RandomBytes(200<<10, 4)

	e := newEnv(t, both+100<<10) // x and y fit together only if the shared leaf counts once
	s := e.open()
	rx := add(t, s, x, Meta{Metadata: expert.Metadata{Name: "x"}})
	ry := add(t, s, y, Meta{Metadata: expert.Metadata{Name: "y"}})
	if !indexed(s, rx) || !indexed(s, ry) {
		t.Fatal("x and y do not fit together: the shared leaf was counted twice")
	}
	if u, _ := s.Usage(); u != both {
		t.Fatalf("Usage = %d, want %d", u, both)
	}
	rz := add(t, s, z, Meta{Metadata: expert.Metadata{Name: "z"}}) // evicts x, the least recently used
	if indexed(s, rx) || !indexed(s, ry) || !indexed(s, rz) {
		t.Fatalf("after adding z: x %v, y %v, z %v; want only x evicted", indexed(s, rx), indexed(s, ry), indexed(s, rz))
	}
	if ok, _ := s.HasBlock(lx.Leaves[0].Cid); !ok {
		t.Fatal("the leaf y shares with x was removed")
	}
	for _, c := range []cid.Cid{lx.Leaves[1].Cid, rx} {
		if ok, _ := s.HasBlock(c); ok {
			t.Errorf("block %s only x used is still stored", c)
		}
	}
	if !bytes.Equal(readAll(t, s, ry), y) {
		t.Fatal("y damaged by the eviction of x")
	}
	if u, _ := s.Usage(); u != 2*unixfs.ChunkSize+nodeY+int64(len(z)) {
		t.Fatalf("Usage = %d after eviction", u)
	}
}

func TestQuotaExceededChangesNothing(t *testing.T) {
	e := newEnv(t, 1<<20)
	s := e.open()
	p := add(t, s, testutil.RandomBytes(600<<10, 1), Meta{Metadata: expert.Metadata{Name: "published"}, Pinned: true})
	u := add(t, s, testutil.RandomBytes(300<<10, 2), Meta{Metadata: expert.Metadata{Name: "cached"}})
	before := snapshot(t, e.dir)
	usage, n := s.Usage()

	for _, size := range []int{500 << 10, 3 << 19} { // one block; a DAG
		_, err := s.Add(t.Context(), bytes.NewReader(testutil.RandomBytes(size, 3)), Meta{})
		if !errors.Is(err, ErrQuota) {
			t.Fatalf("Add of %d bytes = %v; want ErrQuota", size, err)
		}
		sameSnapshot(t, before, snapshot(t, e.dir))
	}

	// The fetch path: the blocks are stored, Complete refuses and drops them.
	b := testutil.RandomBytes(500<<10, 4)
	if err := s.PutBlock(rawCID(b), b); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(t.Context(), rawCID(b), Meta{}); !errors.Is(err, ErrQuota) {
		t.Fatalf("Complete = %v; want ErrQuota", err)
	}
	sameSnapshot(t, before, snapshot(t, e.dir))

	if u2, n2 := s.Usage(); u2 != usage || n2 != n || !indexed(s, p) || !indexed(s, u) {
		t.Fatalf("Usage %d, %d (was %d, %d); pinned indexed %v, cached indexed %v", u2, n2, usage, n, indexed(s, p), indexed(s, u))
	}
	if err := s.CheckFit(500 << 10); !errors.Is(err, ErrQuota) {
		t.Fatalf("CheckFit(500 KiB) = %v; want ErrQuota", err)
	}
	if err := s.CheckFit(400 << 10); err != nil {
		t.Fatalf("CheckFit(400 KiB) = %v; it fits once the cached expert is evicted", err)
	}
	add(t, s, testutil.RandomBytes(400<<10, 5), Meta{})
	if indexed(s, u) || !indexed(s, p) {
		t.Fatal("the cached expert should have made room")
	}
}

// TestCompleteOverQuotaKeepsSharedBlocks: a fetched expert that does not
// fit is dropped with its blocks, except those an indexed expert shares.
func TestCompleteOverQuotaKeepsSharedBlocks(t *testing.T) {
	e := newEnv(t, 2<<20)
	s := e.open()
	shared := testutil.RandomBytes(1<<20, 14)
	a := add(t, s, shared, Meta{Metadata: expert.Metadata{Name: "a"}, Pinned: true})
	content := append(slices.Clone(shared), testutil.RandomBytes(2<<20, 15)...) // its first leaf is a's block
	l := layout(t, content)
	if err := putDAG(s, l, content); err != nil {
		t.Fatal(err)
	}
	if l.Leaves[0].Cid != a {
		t.Fatalf("first leaf %s is not a's block %s", l.Leaves[0].Cid, a)
	}
	if err := s.Complete(t.Context(), l.Root, Meta{}); !errors.Is(err, ErrQuota) {
		t.Fatalf("Complete = %v; want ErrQuota", err)
	}
	if got := readAll(t, s, a); !bytes.Equal(got, shared) {
		t.Fatal("the indexed expert lost its block")
	}
	if ok, _ := s.HasBlock(l.Leaves[1].Cid); ok {
		t.Fatal("a block of the refused expert is still stored")
	}
}
