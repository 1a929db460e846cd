package fetch

import (
	"bytes"
	"context"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Resumed fetch (layout known locally, so requests ask explicit ranges);
// one of two providers does not have the expert and answers NOT_FOUND
// before any header. Its ranges must go to the other provider.
func TestFetchRangesOfProviderFailingBeforeHeader(t *testing.T) {
	data := randomBytes(8<<20, 21)
	src := newMem()
	l := addFile(t, src, data)
	dst := newMem()
	for _, n := range l.Nodes { // a previous, interrupted fetch stored the nodes and leaf 0
		if err := dst.PutBlock(n.Cid, n.Data); err != nil {
			t.Fatal(err)
		}
	}
	leaf := l.Leaves[0]
	if err := dst.PutBlock(leaf.Cid, data[leaf.Offset:leaf.Offset+leaf.Size]); err != nil {
		t.Fatal(err)
	}
	reqHost := newHost(t)
	pGood := startProvider(t, reqHost, src, nil)
	pEmpty := startProvider(t, reqHost, newMem(), nil)
	got, err := NewFetcher(reqHost, dst, Options{}).Fetch(context.Background(), l.Root, []peer.ID{pGood.ID(), pEmpty.ID()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst, got), data) {
		t.Fatal("fetched bytes differ")
	}
}
