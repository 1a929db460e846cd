// Package storetest is the conformance suite for store.BlockStore: every
// implementation, the disk store and any fake a test uses in its place,
// runs it and so honours the contract documented on the interface.
package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/store"
	"github.com/expertd/expertd/node/unixfs"
)

// BlockStore runs the suite. newStore returns an empty store for one
// subtest; it should register its own cleanup with t.Cleanup.
func BlockStore(t *testing.T, newStore func(t *testing.T) store.BlockStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.BlockStore)
	}{
		{"RoundTrip", testRoundTrip},
		{"NotFound", testNotFound},
		{"BadHashRejected", testBadHash},
		{"UnsupportedCIDRejected", testUnsupportedCID},
		{"TooLargeRejected", testTooLarge},
		{"Idempotent", testIdempotent},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// RawCID returns the CID of data as a raw block.
func RawCID(data []byte) cid.Cid {
	d := sha256.Sum256(data)
	h, err := mh.Encode(d[:], mh.SHA2_256)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

func mustPut(t *testing.T, s store.BlockStore, c cid.Cid, data []byte) {
	t.Helper()
	if err := s.PutBlock(c, data); err != nil {
		t.Fatalf("PutBlock(%s): %v", c, err)
	}
}

func mustGet(t *testing.T, s store.BlockStore, c cid.Cid, want []byte) {
	t.Helper()
	got, err := s.GetBlock(c)
	if err != nil {
		t.Fatalf("GetBlock(%s): %v", c, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("GetBlock(%s): %d bytes differ from the %d put", c, len(got), len(want))
	}
}

func mustAbsent(t *testing.T, s store.BlockStore, c cid.Cid) {
	t.Helper()
	if ok, err := s.HasBlock(c); err != nil || ok {
		t.Fatalf("HasBlock(%s) = %v, %v; want false, nil", c, ok, err)
	}
	if _, err := s.GetBlock(c); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetBlock(%s) = %v; want ErrNotFound", c, err)
	}
}

func testRoundTrip(t *testing.T, s store.BlockStore) {
	l, err := unixfs.Build(bytes.NewReader(testutil.RandomBytes(2<<20+1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	full := testutil.RandomBytes(unixfs.ChunkSize, 2)
	blocks := []unixfs.Block{
		{Cid: RawCID(full), Data: full},               // a full leaf
		{Cid: RawCID([]byte("x")), Data: []byte("x")}, // a tiny one
		{Cid: RawCID(nil), Data: []byte{}},            // the empty file
		l.Nodes[len(l.Nodes)-1],                       // a dag-pb node
	}
	for _, b := range blocks {
		mustPut(t, s, b.Cid, b.Data)
	}
	for _, b := range blocks {
		if ok, err := s.HasBlock(b.Cid); err != nil || !ok {
			t.Fatalf("HasBlock(%s) = %v, %v after put", b.Cid, ok, err)
		}
		mustGet(t, s, b.Cid, b.Data)
	}
	got, err := s.GetBlock(blocks[0].Cid)
	if err != nil {
		t.Fatal(err)
	}
	got[0] ^= 0xff // the caller owns the slice
	mustGet(t, s, blocks[0].Cid, blocks[0].Data)
}

func testNotFound(t *testing.T, s store.BlockStore) {
	mustAbsent(t, s, RawCID([]byte("never stored")))
}

func testBadHash(t *testing.T, s store.BlockStore) {
	data := testutil.RandomBytes(1000, 3)
	c := RawCID(data)
	bad := bytes.Clone(data)
	bad[500] ^= 1
	if err := s.PutBlock(c, bad); !errors.Is(err, unixfs.ErrHashMismatch) {
		t.Fatalf("PutBlock of altered data = %v; want ErrHashMismatch", err)
	}
	mustAbsent(t, s, c)
	// The same digest under the dag-pb codec: the hash is checked whatever
	// the codec.
	other := cid.NewCidV1(cid.DagProtobuf, c.Hash())
	if err := s.PutBlock(other, bad); !errors.Is(err, unixfs.ErrHashMismatch) {
		t.Fatalf("PutBlock(dag-pb CID) of altered data = %v; want ErrHashMismatch", err)
	}
	mustAbsent(t, s, other)
}

func testUnsupportedCID(t *testing.T, s store.BlockStore) {
	data := []byte("a CIDv0 block")
	h, err := mh.Sum(data, mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	v0 := cid.NewCidV0(h)
	if err := s.PutBlock(v0, data); !errors.Is(err, unixfs.ErrUnsupportedCID) {
		t.Fatalf("PutBlock(CIDv0) = %v; want ErrUnsupportedCID", err)
	}
	mustAbsent(t, s, v0)
	h5, err := mh.Sum(data, mh.SHA2_512, -1)
	if err != nil {
		t.Fatal(err)
	}
	c512 := cid.NewCidV1(cid.Raw, h5)
	if err := s.PutBlock(c512, data); !errors.Is(err, unixfs.ErrUnsupportedCID) {
		t.Fatalf("PutBlock(sha2-512) = %v; want ErrUnsupportedCID", err)
	}
	mustAbsent(t, s, c512)
}

func testTooLarge(t *testing.T, s store.BlockStore) {
	data := testutil.RandomBytes(store.MaxBlockSize+1, 4)
	c := RawCID(data)
	if err := s.PutBlock(c, data); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("PutBlock of %d bytes = %v; want ErrTooLarge", len(data), err)
	}
	mustAbsent(t, s, c)
}

func testIdempotent(t *testing.T, s store.BlockStore) {
	data := testutil.RandomBytes(4096, 5)
	c := RawCID(data)
	for range 3 {
		mustPut(t, s, c, data)
	}
	mustGet(t, s, c, data)
}

func testConcurrent(t *testing.T, s store.BlockStore) {
	const workers, blocks = 8, 16
	data := make([][]byte, blocks)
	for i := range data {
		data[i] = testutil.RandomBytes(64<<10, uint64(100+i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range blocks {
				j := (i + w) % blocks
				c := RawCID(data[j])
				if err := s.PutBlock(c, data[j]); err != nil {
					errs <- err
					return
				}
				got, err := s.GetBlock(c)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, data[j]) {
					errs <- fmt.Errorf("block %d read back wrong", j)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
