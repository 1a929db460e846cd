package unixfs

import (
	"bytes"
	"errors"
	"testing"

	cid "github.com/ipfs/go-cid"
)

// FuzzDecodeNode checks that DecodeNode never panics, fails only with this
// package's errors, and accepts only canonical nodes whose sizes add up.
// testdata/fuzz/FuzzDecodeNode holds boxo's own 3.5 MiB root block.
func FuzzDecodeNode(f *testing.F) {
	for _, size := range []int64{mib + 1, 3*mib + mib/2} {
		l, err := Build(testInput(size))
		if err != nil {
			f.Fatal(err)
		}
		for _, b := range l.Nodes {
			f.Add(b.Data)
		}
	}
	full, fullLink := mkNode(fullLeaves(LinksPerNode)...)
	f.Add(full.Data)
	upper, _ := mkNode(fullLink, Link{Cid: sumCID(cid.DagProtobuf, nil), Tsize: 60, Size: 7})
	f.Add(upper.Data)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := DecodeNode(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedNode) && !errors.Is(err, ErrNodeTooLarge) && !errors.Is(err, ErrUnsupportedCID) {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		if enc := n.appendEncode(nil); !bytes.Equal(enc, data) {
			t.Fatalf("accepted a non-canonical node:\n%x\nre-encodes as\n%x", data, enc)
		}
		if len(n.Links) == 0 || len(n.Links) > LinksPerNode {
			t.Fatalf("accepted %d links", len(n.Links))
		}
		var sum uint64
		for _, l := range n.Links {
			if _, err := checkCID(l.Cid); err != nil {
				t.Fatalf("accepted link %s: %v", l.Cid, err)
			}
			sum += l.Size
		}
		if sum != n.FileSize {
			t.Fatalf("blocksizes add up to %d, filesize %d", sum, n.FileSize)
		}
	})
}
