package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/expertd/expertd/node/expert"
	"github.com/expertd/expertd/node/store"
	"github.com/expertd/expertd/node/store/storetest"
)

// The in-memory store the other tests use obeys the BlockStore contract.
func TestMemBlocksConformance(t *testing.T) {
	storetest.BlockStore(t, func(*testing.T) store.BlockStore { return newMem() })
}

// TestFetchResumesAfterRestart interrupts a fetch into an on-disk store,
// closes and reopens the store, and completes the fetch: only the missing
// leaves move, and the expert then reads back whole.
func TestFetchResumesAfterRestart(t *testing.T) {
	data := randomBytes(5<<20+99, 9)
	src := newMem()
	l := addFile(t, src, data)
	reqHost := newHost(t)
	broken := wrap(src, l)
	broken.failAt = 3
	p1 := startProvider(t, reqHost, broken, nil)

	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewFetcher(reqHost, st, Options{}).Fetch(context.Background(), l.Root, ids(p1), nil); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("got %v, want ErrIncomplete", err)
	}
	st.Close()

	st, err = store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var served atomic.Int64
	p2 := startProvider(t, reqHost, src, &served)
	got, err := NewFetcher(reqHost, st, Options{}).Fetch(context.Background(), l.Root, ids(p2), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(data) - 3<<20); served.Load() != want {
		t.Fatalf("resumed fetch moved %d bytes, want %d", served.Load(), want)
	}
	if err := st.Complete(context.Background(), got.Root, store.Meta{Metadata: expert.Metadata{Name: "x"}}); err != nil {
		t.Fatal(err)
	}
	rc, err := st.Open(context.Background(), got.Root)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	back, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("expert read back wrong (%v)", err)
	}
}
