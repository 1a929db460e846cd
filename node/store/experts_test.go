package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/expert"
	"github.com/expertd/expertd/node/unixfs"
)

// TestAddMultiLeaf: a 3.5 MiB expert comes back byte for byte under the CID
// unixfs.Build gives it, and its stored DAG is Build's.
func TestAddMultiLeaf(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	content := testutil.RandomBytes(7<<19, 35)
	want := layout(t, content)
	root := add(t, s, content, Meta{Metadata: expert.Metadata{Name: "big"}, Publisher: "12D3KooW"})
	if root != want.Root {
		t.Fatalf("Add = %s; unixfs.Build says %s", root, want.Root)
	}
	if got := readAll(t, s, root); !bytes.Equal(got, content) {
		t.Fatalf("Open gave %d bytes, not the %d added", len(got), len(content))
	}
	l, err := s.Layout(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.Leaves, want.Leaves) || len(l.Nodes) != len(want.Nodes) {
		t.Fatalf("stored layout %+v differs from Build's %+v", l, want)
	}
	for i := range l.Nodes {
		if l.Nodes[i].Cid != want.Nodes[i].Cid || !bytes.Equal(l.Nodes[i].Data, want.Nodes[i].Data) {
			t.Fatalf("node %d differs", i)
		}
	}
	m, err := s.Get(root)
	if err != nil {
		t.Fatal(err)
	}
	if m.CID != root.String() || m.Size != int64(len(content)) || m.Name != "big" || m.Publisher != "12D3KooW" || m.Pinned {
		t.Fatalf("Get = %+v", m)
	}
	if n, k := s.Usage(); k != 1 || n != int64(len(content))+int64(len(want.Nodes[0].Data)) {
		t.Fatalf("Usage = %d, %d", n, k)
	}
}

func TestAddSmallAndEmpty(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	for _, content := range [][]byte{{}, []byte("hello world"), testutil.RandomBytes(unixfs.ChunkSize, 7), testutil.RandomBytes(unixfs.ChunkSize+1, 8)} {
		root := add(t, s, content, Meta{})
		if want := layout(t, content).Root; root != want {
			t.Fatalf("%d bytes: Add = %s; Build says %s", len(content), root, want)
		}
		if got := readAll(t, s, root); !bytes.Equal(got, content) {
			t.Fatalf("%d bytes: read back %d", len(content), len(got))
		}
	}
	if _, k := s.Usage(); k != 4 {
		t.Fatalf("%d experts indexed, want 4", k)
	}
}

func TestAddFillsMetaFromContainer(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	ctr, params := container(t)
	root := add(t, s, ctr, Meta{Metadata: expert.Metadata{Name: "ia3", Density: 0.5}, Pinned: true})
	m, err := s.Get(root)
	if err != nil {
		t.Fatal(err)
	}
	if m.PeftType != "IA3" || m.Params != params || m.Density != 0.5 || m.Name != "ia3" || !m.Pinned ||
		!slices.Equal(m.TargetModules, []string{"qkv", "fc2"}) || m.SourceBytes == 0 {
		t.Fatalf("Get = %+v", m)
	}
	path := filepath.Join(t.TempDir(), "ia3.cpeft")
	if err := os.WriteFile(path, ctr, 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := s.AddFile(t.Context(), path, Meta{}); err != nil || c != root {
		t.Fatalf("AddFile = %s, %v; Add gave %s", c, err, root)
	}
}

func TestAddAgainMerges(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	content := testutil.RandomBytes(5000, 9)
	root := add(t, s, content, Meta{Metadata: expert.Metadata{PeftType: "LORA"}})
	first, _ := s.Get(root)
	add(t, s, content, Meta{Metadata: expert.Metadata{Name: "named later", PeftType: "IA3"}, Pinned: true})
	m, _ := s.Get(root)
	if m.Name != "named later" || m.PeftType != "LORA" || !m.Pinned || !m.Added.Equal(first.Added) || !m.LastUsed.After(first.LastUsed) {
		t.Fatalf("after the second Add: %+v (first %+v)", m, first)
	}
	if n, k := s.Usage(); k != 1 || n != int64(len(content)) {
		t.Fatalf("Usage = %d, %d", n, k)
	}
}

func TestAddTooLarge(t *testing.T) {
	e := newEnv(t, 0)
	e.opts.MaxExpertSize = 2 << 20
	s := e.open()
	before := snapshot(t, e.dir)
	_, err := s.Add(t.Context(), bytes.NewReader(testutil.RandomBytes(3<<20, 10)), Meta{})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Add = %v; want ErrTooLarge", err)
	}
	sameSnapshot(t, before, snapshot(t, e.dir))
}

func TestAddCancelled(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	before := snapshot(t, e.dir)
	ctx, cancel := context.WithCancel(t.Context())
	r := &cancelAfter{r: bytes.NewReader(testutil.RandomBytes(5<<20, 10)), n: 3 << 20, cancel: cancel}
	if _, err := s.Add(ctx, r, Meta{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Add = %v; want context.Canceled", err)
	}
	sameSnapshot(t, before, snapshot(t, e.dir))
}

// cancelAfter cancels a context once n bytes have been read.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

// TestComplete is the fetch path: blocks arrive one by one through
// PutBlock, then Complete indexes the expert.
func TestComplete(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	content := testutil.RandomBytes(7<<19, 11)
	l := layout(t, content)
	root := l.Root
	if err := s.Complete(t.Context(), root, Meta{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Complete with nothing stored = %v; want ErrNotFound", err)
	}
	for _, n := range l.Nodes {
		if err := s.PutBlock(n.Cid, n.Data); err != nil {
			t.Fatal(err)
		}
	}
	for _, lf := range l.Leaves[1:] {
		if err := s.PutBlock(lf.Cid, content[lf.Offset:lf.Offset+lf.Size]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Complete(t.Context(), root, Meta{Metadata: expert.Metadata{Name: "fetched"}}); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Complete without leaf 0 = %v; want ErrIncomplete", err)
	}
	if _, err := s.Get(root); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an incomplete expert is indexed: %v", err)
	}
	have := 0
	for _, lf := range l.Leaves {
		if ok, _ := s.HasBlock(lf.Cid); ok {
			have++
		}
	}
	if have != len(l.Leaves)-1 {
		t.Fatalf("HasBlock finds %d leaves, want %d", have, len(l.Leaves)-1)
	}
	lf := l.Leaves[0]
	if err := s.PutBlock(lf.Cid, content[:lf.Size]); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(t.Context(), root, Meta{Metadata: expert.Metadata{Name: "fetched"}, Publisher: "peer"}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, root); !bytes.Equal(got, content) {
		t.Fatal("read back differs")
	}
	if m, _ := s.Get(root); m.Name != "fetched" || m.Size != int64(len(content)) {
		t.Fatalf("Get = %+v", m)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	e := newEnv(t, 10<<20)
	s := e.open()
	contents := [][]byte{testutil.RandomBytes(300, 12), testutil.RandomBytes(7<<19, 13), testutil.RandomBytes(1<<20, 14)}
	var roots []cid.Cid
	for i, c := range contents {
		roots = append(roots, add(t, s, c, Meta{Metadata: expert.Metadata{Name: string(rune('a' + i)), Rank: 8}, Publisher: "p"}))
	}
	if err := s.Pin(roots[1], true); err != nil {
		t.Fatal(err)
	}
	readAll(t, s, roots[0])
	orphan := testutil.RandomBytes(999, 15)
	if err := s.PutBlock(rawCID(orphan), orphan); err != nil {
		t.Fatal(err)
	}
	list := s.List()
	usage, n := s.Usage()
	s.Close()

	s = e.open()
	got := s.List()
	if len(got) != len(list) {
		t.Fatalf("%d experts after reopen, %d before", len(got), len(list))
	}
	for i := range list {
		sameMeta(t, got[i], list[i])
	}
	if u, k := s.Usage(); u != usage || k != n {
		t.Fatalf("Usage = %d, %d after reopen; %d, %d before", u, k, usage, n)
	}
	for i, r := range roots {
		if !bytes.Equal(readAll(t, s, r), contents[i]) {
			t.Fatalf("expert %d differs after reopen", i)
		}
	}
	if _, err := s.GetBlock(rawCID(orphan)); err != nil {
		t.Fatalf("the blocks of an unfinished fetch are gone: %v", err)
	}
}

func TestRemove(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	shared := testutil.RandomBytes(unixfs.ChunkSize, 16)
	x := append(bytes.Clone(shared), testutil.RandomBytes(1000, 17)...)
	y := append(bytes.Clone(shared), testutil.RandomBytes(2000, 18)...)
	rx, ry := add(t, s, x, Meta{Pinned: true}), add(t, s, y, Meta{})
	lx := layout(t, x)
	if err := s.Remove(rx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(rx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Remove = %v", err)
	}
	if err := s.Remove(rx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove = %v", err)
	}
	for _, c := range []cid.Cid{rx, lx.Leaves[1].Cid} {
		if ok, _ := s.HasBlock(c); ok {
			t.Errorf("block %s of the removed expert kept", c)
		}
	}
	if !bytes.Equal(readAll(t, s, ry), y) {
		t.Fatal("the expert sharing a block was damaged")
	}
	if n, k := s.Usage(); k != 1 || n != int64(len(y))+int64(len(layout(t, y).Nodes[0].Data)) {
		t.Fatalf("Usage = %d, %d", n, k)
	}
}

func TestOpenNotIndexed(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	b := testutil.RandomBytes(100, 19)
	if err := s.PutBlock(rawCID(b), b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(t.Context(), rawCID(b)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open of a block that is not an indexed expert = %v", err)
	}
}

func TestOpenDetectsCorruptLeaf(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	content := testutil.RandomBytes(3<<20, 20)
	root := add(t, s, content, Meta{})
	l := layout(t, content)
	flipByte(t, blockFile(s, l.Leaves[1].Cid), 5)
	rc, err := s.Open(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reading over a corrupt leaf = %v; want ErrCorrupt", err)
	}
	if len(got) != unixfs.ChunkSize {
		t.Fatalf("read %d bytes before the corrupt leaf, want %d", len(got), unixfs.ChunkSize)
	}
}

// TestCompleteDropsWrongSizeBlock: a stored leaf whose file has the wrong
// size cannot hold its block: Complete drops it and reports the expert
// incomplete instead of indexing an expert that cannot be read; once the
// leaf is put again, Complete indexes it.
func TestCompleteDropsWrongSizeBlock(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	content := testutil.RandomBytes(5<<19, 12)
	l := layout(t, content)
	if err := putDAG(s, l, content); err != nil {
		t.Fatal(err)
	}
	lf := l.Leaves[1]
	if err := os.Truncate(blockFile(s, lf.Cid), int64(lf.Size)/2); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(t.Context(), l.Root, Meta{}); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Complete with a truncated leaf = %v; want ErrIncomplete", err)
	}
	if ok, _ := s.HasBlock(lf.Cid); ok {
		t.Fatal("truncated leaf still stored")
	}
	if err := s.PutBlock(lf.Cid, content[lf.Offset:lf.Offset+lf.Size]); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(t.Context(), l.Root, Meta{}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, l.Root); !bytes.Equal(got, content) {
		t.Fatal("read back differs")
	}
}

// TestUpdateKeepsStoreFields: Update changes the caller's fields of an
// entry and keeps those the store sets, whatever f does, also on disk.
func TestUpdateKeepsStoreFields(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	root := add(t, s, testutil.RandomBytes(1000, 13), Meta{Metadata: expert.Metadata{Name: "a"}})
	want, err := s.Get(root)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(root, func(m *Meta) {
		m.Name = "b"
		m.CID, m.Size, m.Added, m.LastUsed = "bafkreixxx", 1, time.Time{}, time.Time{}
	})
	if err != nil {
		t.Fatal(err)
	}
	want.Name = "b"
	got, _ := s.Get(root)
	sameMeta(t, got, want)
	s.Close()
	got, _ = e.open().Get(root)
	sameMeta(t, got, want)
}
