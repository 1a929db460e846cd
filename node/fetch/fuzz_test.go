package fetch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	gproto "google.golang.org/protobuf/proto"

	pb "github.com/expertd/expertd/proto"
)

// response renders length-prefixed frames as they travel on a stream.
func response[M interface {
	*pb.FetchFrame | *pb.FetchRequest
	gproto.Message
}](t testing.TB, frames ...M) []byte {
	var out bytes.Buffer
	var buf []byte
	var err error
	for _, f := range frames {
		if buf, err = pb.WriteFrame(&out, f, buf); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes()
}

// FuzzReceive feeds arbitrary provider answers to the requester: it must
// fail cleanly or store only blocks that verify, never panic or over-allocate.
func FuzzReceive(f *testing.F) {
	small := randomBytes(3000, 10)
	src := newMem()
	l := addFile(f, src, small)
	hdr := &pb.FetchFrame{Body: &pb.FetchFrame_Header{Header: &pb.FetchHeader{Size: 3000, Leaves: 1, Ranges: []*pb.LeafRange{{Start: 0, End: 1}}}}}
	blk := &pb.FetchFrame{Body: &pb.FetchFrame_Block{Block: &pb.Block{Index: 0, Data: small}}}
	f.Add(response(f, hdr, blk))
	f.Add(response(f, hdr))
	f.Add(response(f, &pb.FetchFrame{Body: &pb.FetchFrame_Error{Error: &pb.FetchError{Code: pb.FetchError_NOT_FOUND, Message: "no"}}}))
	f.Add(response(f, hdr, &pb.FetchFrame{Body: &pb.FetchFrame_Block{Block: &pb.Block{Index: 0, Data: small[:10]}}}))
	fe := &Fetcher{opts: Options{}}
	fe.opts.defaults()
	f.Fuzz(func(t *testing.T, data []byte) {
		dst := newMem()
		fe.blocks = dst
		events := make(chan event, 4)
		var offered []uint64
		done := make(chan struct{})
		go func() {
			for ev := range events {
				if h, ok := ev.(evHeader); ok {
					offered = h.offered
				}
			}
			close(done)
		}()
		r := streamReq{msg: &pb.FetchRequest{Cid: l.Root.Bytes()}}
		err := fe.receive(context.Background(), bufio.NewReader(bytes.NewReader(data)), func() {}, r, l.Root, events)
		close(events)
		<-done
		// A provider may offer less than asked (a partial holder), but
		// what an accepted answer offered must be stored, verified.
		if err == nil && len(offered) > 0 {
			got, gerr := dst.GetBlock(l.Root)
			if gerr != nil || !bytes.Equal(got, small) {
				t.Fatalf("accepted an answer offering %v but stored %d bytes (%v)", offered, len(got), gerr)
			}
		}
		puts := dst.Puts()
		if err == nil && len(offered) == 0 && len(puts) > 0 {
			t.Fatalf("accepted an answer offering nothing but stored %d blocks", len(puts))
		}
		for c := range puts {
			if c != l.Root {
				t.Fatalf("stored a block %s that is not part of the expert", c)
			}
		}
	})
}

// FuzzRequest feeds arbitrary requests to the provider's parser.
func FuzzRequest(f *testing.F) {
	f.Add(response(f, &pb.FetchRequest{Cid: []byte{1, 85, 18, 32}, Parts: 3, Part: 1}))
	f.Add(response(f, &pb.FetchRequest{Ranges: []*pb.LeafRange{{Start: 0, End: 2}, {Start: 4, End: 9}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req pb.FetchRequest
		var buf []byte
		if err := readMsg(bufio.NewReader(bytes.NewReader(data)), &req, maxRequestFrame, &buf); err != nil {
			if !errors.Is(err, ErrFrame) && !errors.Is(err, io.ErrUnexpectedEOF) && err != io.EOF {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		for _, n := range []uint64{0, 1, 7, 1000} {
			rs, err := wanted(&req, n)
			if err != nil {
				continue
			}
			for _, r := range rs {
				if r.GetStart() >= r.GetEnd() || r.GetEnd() > n {
					t.Fatalf("range [%d, %d) accepted for %d leaves", r.GetStart(), r.GetEnd(), n)
				}
			}
		}
	})
}
