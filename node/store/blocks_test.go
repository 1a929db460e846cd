package store

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/expert"
	"github.com/expertd/expertd/node/unixfs"
)

func TestBadBlockWritesNothing(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	before := snapshot(t, e.dir)
	b := testutil.RandomBytes(5000, 1)
	c := rawCID(b)
	b[0] ^= 1
	if err := s.PutBlock(c, b); !errors.Is(err, unixfs.ErrHashMismatch) {
		t.Fatalf("PutBlock = %v; want ErrHashMismatch", err)
	}
	sameSnapshot(t, before, snapshot(t, e.dir))
}

// TestNoPartialBlockVisible reads every block file while blocks are being
// written: a file under a CID name must always hold the whole block.
func TestNoPartialBlockVisible(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := range 24 {
				b := testutil.RandomBytes(512<<10, uint64(1000*w+i))
				if err := s.PutBlock(rawCID(b), b); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	checked := 0
	scanErr := make(chan error, 1)
	go func() {
		defer close(scanErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			_, err := s.walkBlocks(t.Context(), func(b storedBlock) error {
				got, err := os.ReadFile(b.path)
				if err != nil {
					return err
				}
				checked++
				return unixfs.VerifyBlock(b.cid, got)
			})
			if err != nil {
				scanErr <- err
				return
			}
		}
	}()
	wg.Wait()
	close(done)
	if err := <-scanErr; err != nil {
		t.Fatalf("a block file was seen incomplete: %v", err)
	}
	t.Logf("%d block files read while writing", checked)
}

func TestLeftoverTempFilesRemovedAtOpen(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	b := testutil.RandomBytes(3000, 2)
	c := rawCID(b)
	if err := s.PutBlock(c, b); err != nil {
		t.Fatal(err)
	}
	root := add(t, s, testutil.RandomBytes(2<<20, 3), Meta{Metadata: expert.Metadata{Name: "x"}})
	s.Close()

	shardDir := filepath.Dir(blockFile(s, c))
	for _, p := range []string{
		filepath.Join(shardDir, tmpPrefix+"123"),
		filepath.Join(e.dir, "experts", tmpPrefix+"456"),
	} {
		if err := os.WriteFile(p, b[:100], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s = e.open()
	if left := tempFiles(t, e.dir); len(left) > 0 {
		t.Fatalf("temporary files left after Open: %v", left)
	}
	if _, err := s.GetBlock(c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(root); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Verify(t.Context()); err != nil || !r.OK() {
		t.Fatalf("Verify = %+v, %v", r, err)
	}
}

func TestGetBlockDetectsCorruption(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	b := testutil.RandomBytes(100<<10, 4)
	c := rawCID(b)
	if err := s.PutBlock(c, b); err != nil {
		t.Fatal(err)
	}
	flipByte(t, blockFile(s, c), 777)
	_, err := s.GetBlock(c)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, unixfs.ErrHashMismatch) {
		t.Fatalf("GetBlock of a corrupt block = %v; want ErrCorrupt and ErrHashMismatch", err)
	}
	if ok, _ := s.HasBlock(c); ok {
		t.Fatal("corrupt block still stored")
	}
	if err := s.PutBlock(c, b); err != nil { // repaired by a new put
		t.Fatal(err)
	}
	if got, err := s.GetBlock(c); err != nil || len(got) != len(b) {
		t.Fatalf("GetBlock after repair: %v", err)
	}
}

func TestLocked(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	if _, err := Open(e.dir, e.opts); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v; want ErrLocked", err)
	}
	s.Close()
	s2 := e.open()
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.GetBlock(rawCID(nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetBlock after Close = %v; want ErrClosed", err)
	}
}

// TestOversizeBlockFileNotRead: a file under a block's name larger than any
// block can be (disk corruption, or a file put there by hand) is dropped
// as corrupt from its size, never read into memory.
func TestOversizeBlockFileNotRead(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	b := testutil.RandomBytes(1000, 5)
	c := rawCID(b)
	if err := s.PutBlock(c, b); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(blockFile(s, c), 256<<20); err != nil { // sparse: costs no disk
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := s.GetBlock(c)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetBlock of a 256 MiB block file = %v; want ErrCorrupt", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Fatalf("GetBlock of a 256 MiB block file allocated %d bytes", n)
	}
	if ok, _ := s.HasBlock(c); ok {
		t.Fatal("oversize block file still stored")
	}
}
