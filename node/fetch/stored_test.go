package fetch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"slices"
	"sync/atomic"
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

// failingPut fails its first PutBlock, once the test lets it (inPut is
// closed while it waits).
type failingPut struct {
	*memBlocks
	calls          atomic.Int32
	inPut, proceed chan struct{}
}

func (f *failingPut) PutBlock(c cid.Cid, data []byte) error {
	if f.calls.Add(1) == 1 {
		close(f.inPut)
		<-f.proceed
		return errors.New("disk full")
	}
	return f.memBlocks.PutBlock(c, data)
}

// Two copies of a leaf at once, the first one's write failing after the
// second arrived: the second is written, the leaf is in the store.
func TestReceiveFailedStoreIsNotStored(t *testing.T) {
	data := randomBytes(2<<20, 44)
	l := addFile(t, newMem(), data)
	dst := &failingPut{memBlocks: newMem(), inPut: make(chan struct{}), proceed: make(chan struct{})}
	fe := &Fetcher{blocks: dst}
	fe.opts.defaults()
	var stored storedLeaves
	answer := response(t,
		&pb.FetchFrame{Body: &pb.FetchFrame_Header{Header: &pb.FetchHeader{Size: l.Size, Leaves: uint64(len(l.Leaves)), Ranges: toRanges([]uint64{0})}}},
		&pb.FetchFrame{Body: &pb.FetchFrame_Block{Block: &pb.Block{Index: 0, Data: leafData(t, l, data, 0)}}})
	receive := func() error {
		r := streamReq{msg: ask{leaves: []uint64{0}}.wire(l.Root), known: l, stored: &stored}
		return fe.receive(context.Background(), bufio.NewReader(bytes.NewReader(answer)), func() {}, r, l.Root, make(chan event, 8))
	}
	first := make(chan error, 1)
	go func() { first <- receive() }()
	<-dst.inPut // the first copy is being written
	if err := receive(); err != nil {
		t.Fatalf("second copy: %v", err)
	}
	close(dst.proceed)
	if err := <-first; err == nil {
		t.Fatal("first copy: its failed write went unreported")
	}
	if ok, _ := dst.HasBlock(l.Leaves[0].Cid); !ok {
		t.Fatal("leaf 0 is not in the store: the second copy was skipped for a write that then failed")
	}
}
