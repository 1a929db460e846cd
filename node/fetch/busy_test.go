package fetch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	pb "github.com/expertd/expertd/proto"
)

// A BUSY refusal that asked for a header brings the layout and what the
// provider holds, and when to ask again.
func TestReceiveBusyWithHeader(t *testing.T) {
	data := randomBytes(3<<20, 41)
	src := newMem()
	l := addFile(t, src, data)
	var nodes [][]byte
	for _, n := range l.Nodes {
		nodes = append(nodes, n.Data)
	}
	hdr := &pb.FetchFrame{Body: &pb.FetchFrame_Header{Header: &pb.FetchHeader{
		Size: l.Size, Leaves: uint64(len(l.Leaves)), Nodes: nodes, Have: []byte{0b010}, Busy: true}}}
	busy := &pb.FetchFrame{Body: &pb.FetchFrame_Error{Error: &pb.FetchError{Code: pb.FetchError_BUSY, Message: "uplink busy", RetryMs: 420}}}
	fe := &Fetcher{opts: Options{}, blocks: newMem()}
	fe.opts.defaults()
	for _, tc := range []struct {
		name   string
		asked  bool // header_when_busy
		frames []*pb.FetchFrame
		want   error
	}{
		{"header, then BUSY", true, []*pb.FetchFrame{hdr, busy}, ErrBusy},
		{"a busy header not asked for", false, []*pb.FetchFrame{hdr, busy}, ErrFrame},
		{"a busy header, then nothing", true, []*pb.FetchFrame{hdr}, nil},
		{"a busy header, then a block", true, []*pb.FetchFrame{hdr, {Body: &pb.FetchFrame_Block{Block: &pb.Block{Index: 0, Data: data[:10]}}}}, ErrFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events := make(chan event, 4)
			r := streamReq{msg: &pb.FetchRequest{Cid: l.Root.Bytes(), Parts: 1, HeaderWhenBusy: tc.asked}}
			err := fe.receive(context.Background(), bufio.NewReader(bytes.NewReader(response(t, tc.frames...))), func() {}, r, l.Root, events)
			switch {
			case tc.want == nil && err == nil:
				t.Fatal("accepted a busy header with no BUSY after it")
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want != ErrBusy {
				return
			}
			var be *busyError
			if !errors.As(err, &be) || be.retry != 420*time.Millisecond {
				t.Fatalf("BUSY %v: want a retry hint of 420ms", err)
			}
			h := (<-events).(evHeader)
			if h.layout == nil || len(h.offered) != 0 || !slices.Equal(h.has, []bool{false, true, false}) {
				t.Fatalf("header event %+v: want the layout, nothing offered, leaf 1 held", h)
			}
		})
	}
}
