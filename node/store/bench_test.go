package store

import (
	"bytes"
	"encoding/binary"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/unixfs"
)

// BenchmarkPutBlock stores distinct 1 MiB blocks, each fsynced with its
// directory.
func BenchmarkPutBlock(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	block := testutil.RandomBytes(unixfs.ChunkSize, 1)
	b.SetBytes(unixfs.ChunkSize)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		binary.LittleEndian.PutUint64(block, uint64(i))
		c := rawCID(block)
		b.StartTimer()
		if err := s.PutBlock(c, block); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetBlock reads and re-hashes 1 MiB blocks (from the page cache).
func BenchmarkGetBlock(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var cids []cid.Cid
	for i := range 16 {
		block := testutil.RandomBytes(unixfs.ChunkSize, uint64(i))
		c := rawCID(block)
		if err := s.PutBlock(c, block); err != nil {
			b.Fatal(err)
		}
		cids = append(cids, c)
	}
	b.SetBytes(unixfs.ChunkSize)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		got, err := s.GetBlock(cids[i%len(cids)])
		if err != nil || len(got) != unixfs.ChunkSize {
			b.Fatal(len(got), err)
		}
	}
}

// BenchmarkAdd64MiB adds a new 64 MiB expert each time: chunk, hash, write
// and fsync 64 leaves and a root, index it.
func BenchmarkAdd64MiB(b *testing.B) {
	const size = 64 << 20
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	content := testutil.RandomBytes(size, 1)
	b.SetBytes(size)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		for off := 0; off < size; off += unixfs.ChunkSize { // new leaves every time
			binary.LittleEndian.PutUint64(content[off:], uint64(i))
		}
		b.StartTimer()
		root, err := s.Add(b.Context(), bytes.NewReader(content), Meta{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Remove(root); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkStore10MiB verifies and stores ten new 1 MiB leaves with
// PutBlock, as a fetch does with a 10 MiB expert's leaves (each checked
// against its CID, written, fsynced with its directory): the figure the
// README gives for the cost of verifying and storing 10 MiB, in ms/10MiB.
func BenchmarkStore10MiB(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	blocks := make([][]byte, 10)
	for j := range blocks {
		blocks[j] = testutil.RandomBytes(unixfs.ChunkSize, uint64(j))
	}
	cids := make([]cid.Cid, len(blocks))
	b.SetBytes(int64(len(blocks)) * unixfs.ChunkSize)
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		for j, block := range blocks { // new leaves every time
			binary.LittleEndian.PutUint64(block, uint64(i))
			cids[j] = rawCID(block)
		}
		b.StartTimer()
		for j, block := range blocks {
			if err := s.PutBlock(cids[j], block); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/10MiB")
}
