package store

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/expert"
)

func TestVerify(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	content := testutil.RandomBytes(7<<19, 1)
	root := add(t, s, content, Meta{Metadata: expert.Metadata{Name: "damaged"}})
	good := add(t, s, testutil.RandomBytes(2<<20, 2), Meta{Metadata: expert.Metadata{Name: "fine"}})
	orphan := testutil.RandomBytes(4096, 3)
	if err := s.PutBlock(rawCID(orphan), orphan); err != nil {
		t.Fatal(err)
	}
	r, err := s.Verify(t.Context())
	if err != nil || !r.OK() {
		t.Fatalf("Verify of a sound store = %+v, %v", r, err)
	}
	if r.Orphans != 1 || r.OrphanBytes != 4096 || r.Experts != 2 || r.Blocks != 4+1+3+1 {
		t.Fatalf("Verify counted %+v", r)
	}

	l := layout(t, content)
	bad := l.Leaves[2].Cid
	flipByte(t, blockFile(s, bad), 1000)
	stray := filepath.Join(e.dir, "blocks", "zz", "not-a-cid")
	os.MkdirAll(filepath.Dir(stray), 0o700)
	if err := os.WriteFile(stray, []byte("?"), 0o600); err != nil {
		t.Fatal(err)
	}

	r, err = s.Verify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() {
		t.Fatal("Verify found nothing wrong")
	}
	if !slices.Equal(r.Corrupt, []string{bad.String()}) {
		t.Errorf("Corrupt = %v, want [%s]", r.Corrupt, bad)
	}
	if len(r.Incomplete) != 1 || r.Incomplete[0].CID != root.String() || r.Incomplete[0].Name != "damaged" ||
		!slices.Equal(r.Incomplete[0].Missing, []string{bad.String()}) {
		t.Errorf("Incomplete = %+v", r.Incomplete)
	}
	if !slices.Equal(r.Stray, []string{stray}) {
		t.Errorf("Stray = %v", r.Stray)
	}
	if ok, _ := s.HasBlock(bad); ok {
		t.Error("the corrupt block was not removed")
	}
	if _, err := os.Stat(stray); err != nil {
		t.Error("a stray file was removed")
	}
	if _, err := s.Get(good); err != nil {
		t.Error(err)
	}

	// A fetch puts the block back: the expert is whole again.
	lf := l.Leaves[2]
	if err := s.PutBlock(bad, content[lf.Offset:lf.Offset+lf.Size]); err != nil {
		t.Fatal(err)
	}
	os.Remove(stray)
	if r, err := s.Verify(t.Context()); err != nil || !r.OK() {
		t.Fatalf("Verify after repair = %+v, %v", r, err)
	}
}

func TestGC(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	root := add(t, s, testutil.RandomBytes(3<<20, 1), Meta{})
	oldOrphan, newOrphan := testutil.RandomBytes(100, 2), testutil.RandomBytes(100, 3)
	for _, b := range [][]byte{oldOrphan, newOrphan} {
		if err := s.PutBlock(rawCID(b), b); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	_, err := s.walkBlocks(t.Context(), func(b storedBlock) error {
		if b.cid != rawCID(newOrphan) {
			return os.Chtimes(b.path, old, old)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.GC(t.Context(), time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("GC = %d, %v; want 1 (the old orphan)", n, err)
	}
	if ok, _ := s.HasBlock(rawCID(oldOrphan)); ok {
		t.Error("old orphan kept")
	}
	if ok, _ := s.HasBlock(rawCID(newOrphan)); !ok {
		t.Error("recent orphan removed")
	}
	readAll(t, s, root)

	// Putting an old orphan again makes it recent.
	if err := s.PutBlock(rawCID(oldOrphan), oldOrphan); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(blockFile(s, rawCID(newOrphan)), old, old)
	if err := s.PutBlock(rawCID(newOrphan), newOrphan); err != nil {
		t.Fatal(err)
	}
	if n, err := s.GC(t.Context(), time.Hour); err != nil || n != 0 {
		t.Fatalf("GC = %d, %v; want 0", n, err)
	}
}
