package fetch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"testing"

	pb "github.com/expertd/expertd/proto"
)

// Each block frame must carry the index of the leaf asked for next: a
// provider that sends them out of order, or numbers a leaf wrongly, breaks
// the protocol (ErrFrame), and nothing of that frame is stored. Checking
// only the data against the expected leaf let a wrongly numbered leaf
// through, and called an out-of-order one a corrupt block (ErrVerify,
// which bans the provider) instead (issue 19's mutation pass).
func TestReceiveLeafIndex(t *testing.T) {
	data := randomBytes(3<<20, 62)
	src := newMem()
	l := addFile(t, src, data)
	n := uint64(len(l.Leaves))
	asked := &pb.FetchRequest{Cid: l.Root.Bytes(), Ranges: []*pb.LeafRange{{Start: 0, End: 2}}, SkipNodes: true}
	header := &pb.FetchFrame{Body: &pb.FetchFrame_Header{Header: &pb.FetchHeader{Size: l.Size, Leaves: n, Ranges: asked.Ranges}}}
	leaf := func(index, of uint64) *pb.FetchFrame {
		d, err := src.GetBlock(l.Leaves[of].Cid)
		if err != nil {
			t.Fatal(err)
		}
		return &pb.FetchFrame{Body: &pb.FetchFrame_Block{Block: &pb.Block{Index: index, Data: d}}}
	}
	for _, tc := range []struct {
		name   string
		frames []*pb.FetchFrame
	}{
		{"out of order", []*pb.FetchFrame{header, leaf(1, 1), leaf(0, 0)}},
		{"leaf 0 numbered 1", []*pb.FetchFrame{header, leaf(1, 0), leaf(1, 1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := newMem()
			fe := NewFetcher(nil, dst, Options{})
			events := make(chan event, 4)
			r := streamReq{id: 1, msg: asked, known: l}
			err := fe.receive(context.Background(), bufio.NewReader(bytes.NewReader(response(t, tc.frames...))), func() {}, r, l.Root, events)
			if !errors.Is(err, ErrFrame) || errors.Is(err, ErrVerify) {
				t.Fatalf("got %v, want ErrFrame", err)
			}
			if len(dst.Puts()) != 0 {
				t.Fatalf("stored %v from a frame out of protocol", dst.Puts())
			}
		})
	}
	// The same leaves, numbered right, are taken.
	dst := newMem()
	fe := NewFetcher(nil, dst, Options{})
	events := make(chan event, 4)
	r := streamReq{id: 1, msg: asked, known: l}
	if err := fe.receive(context.Background(), bufio.NewReader(bytes.NewReader(response(t, header, leaf(0, 0), leaf(1, 1)))), func() {}, r, l.Root, events); err != nil {
		t.Fatal(err)
	}
	if len(dst.Puts()) != 2 {
		t.Fatalf("stored %d leaves, want 2", len(dst.Puts()))
	}
}
