package unixfs

import (
	"bytes"
	"io"
	"testing"
)

func BenchmarkBuild(b *testing.B) {
	data, err := io.ReadAll(testInput(64 * mib))
	if err != nil {
		b.Fatal(err)
	}
	want, err := Build(bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		l, err := Build(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		if l.Root != want.Root {
			b.Fatalf("root %s, then %s", want.Root, l.Root)
		}
	}
}

func BenchmarkDecodeNode(b *testing.B) {
	blk, _ := mkNode(fullLeaves(LinksPerNode)...)
	b.SetBytes(int64(len(blk.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeNode(blk.Data); err != nil {
			b.Fatal(err)
		}
	}
}
