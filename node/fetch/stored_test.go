package fetch

import (
	"bufio"
	"bytes"
	"context"
	"slices"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/node/unixfs"
	pb "github.com/expertd/expertd/proto"
)

// Two providers sending the same leaves (a stolen tail the victim had
// already sent): each leaf is verified and counted both times, stored and
// reported as stored once.
func TestReceiveStoresALeafOnce(t *testing.T) {
	data := randomBytes(3<<20+5, 42)
	l := addFile(t, newMem(), data)
	dst := newMem()
	var told []uint64
	fe := &Fetcher{blocks: dst, opts: Options{Stored: func(_ cid.Cid, i uint64) { told = append(told, i) }}}
	fe.opts.defaults()
	answer := func(leaves []uint64) []byte {
		frames := []*pb.FetchFrame{{Body: &pb.FetchFrame_Header{Header: &pb.FetchHeader{
			Size: l.Size, Leaves: uint64(len(l.Leaves)), Ranges: toRanges(leaves)}}}}
		for _, i := range leaves {
			frames = append(frames, &pb.FetchFrame{Body: &pb.FetchFrame_Block{Block: &pb.Block{Index: i, Data: leafData(t, l, data, i)}}})
		}
		return response(t, frames...)
	}
	var stored storedLeaves
	leaves := 0
	for _, asked := range [][]uint64{{0, 1, 2, 3}, {2, 3}} {
		events := make(chan event, 16)
		r := streamReq{msg: ask{leaves: asked}.wire(l.Root), known: l, stored: &stored}
		if err := fe.receive(context.Background(), bufio.NewReader(bytes.NewReader(answer(asked))), func() {}, r, l.Root, events); err != nil {
			t.Fatal(err)
		}
		close(events)
		for ev := range events {
			if _, ok := ev.(evLeaf); ok {
				leaves++
			}
		}
	}
	if leaves != 6 {
		t.Errorf("%d leaf events, want 6: a second copy is still counted", leaves)
	}
	for _, leaf := range l.Leaves {
		if n := dst.Puts()[leaf.Cid]; n != 1 {
			t.Errorf("leaf %s stored %d times", leaf.Cid, n)
		}
	}
	if want := []uint64{0, 1, 2, 3}; !slices.Equal(told, want) {
		t.Errorf("Stored told %v, want %v", told, want)
	}
}

// leafData is leaf i of data as laid out by l.
func leafData(t *testing.T, l *unixfs.Layout, data []byte, i uint64) []byte {
	t.Helper()
	leaf := l.Leaves[i]
	return data[leaf.Offset : leaf.Offset+leaf.Size]
}
