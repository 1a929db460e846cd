package fetch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	pb "github.com/expertd/expertd/proto"
)

// What a requester accepts of a provider's header, without a network: the
// leaves it offers must be asked ones, in order; one that says it has
// asked leaves and offers none is a liar; a partial holder that has none
// of them may offer none.
func TestReceiveHeaderChecks(t *testing.T) {
	data := randomBytes(4<<20, 48)
	src := newMem()
	l := addFile(t, src, data)
	n := uint64(len(l.Leaves))
	asked := &pb.FetchRequest{Cid: l.Root.Bytes(), Ranges: []*pb.LeafRange{{Start: 1, End: 3}}, SkipNodes: true}
	has := func(leaves ...uint64) []byte {
		b := make([]byte, (n+7)/8)
		for _, i := range leaves {
			b[i/8] |= 1 << (i % 8)
		}
		return b
	}
	hdr := func(ranges []*pb.LeafRange, have []byte) *pb.FetchFrame {
		return &pb.FetchFrame{Body: &pb.FetchFrame_Header{Header: &pb.FetchHeader{Size: l.Size, Leaves: n, Ranges: ranges, Have: have}}}
	}
	tests := []struct {
		name    string
		header  *pb.FetchFrame
		want    error    // nil: accepted, up to the missing leaves
		offered []uint64 // when accepted
	}{
		{"a liar: has the asked leaves, offers none", hdr(nil, has(0, 1, 2, 3)), ErrFrame, nil},
		{"a full provider offering none", hdr(nil, nil), ErrFrame, nil},
		{"a leaf not asked", hdr([]*pb.LeafRange{{Start: 0, End: 2}}, nil), ErrFrame, nil},
		{"out of order", hdr([]*pb.LeafRange{{Start: 2, End: 3}, {Start: 1, End: 2}}, nil), ErrFrame, nil},
		{"a bitmap of the wrong size", hdr([]*pb.LeafRange{{Start: 1, End: 2}}, []byte{1, 2, 3}), ErrFrame, nil},
		{"another expert's size", &pb.FetchFrame{Body: &pb.FetchFrame_Header{Header: &pb.FetchHeader{Size: l.Size + 1, Leaves: n}}}, ErrVerify, nil},
		{"a partial holder with none of them", hdr(nil, has(0, 3)), nil, nil},
		{"a partial holder offering what it has", hdr([]*pb.LeafRange{{Start: 2, End: 3}}, has(2)), nil, []uint64{2}},
		{"a loaded full provider offering one", hdr([]*pb.LeafRange{{Start: 1, End: 2}}, nil), nil, []uint64{1}},
	}
	fe := NewFetcher(nil, newMem(), Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			events := make(chan event, 1)
			r := streamReq{id: 1, msg: asked, known: l}
			err := fe.receive(context.Background(), bufio.NewReader(bytes.NewReader(response(t, tc.header))), func() {}, r, l.Root, events)
			if tc.want != nil {
				if !errors.Is(err, tc.want) || len(events) > 0 {
					t.Fatalf("got %v (%d events), want %v and no header event", err, len(events), tc.want)
				}
				return
			}
			if len(events) != 1 {
				t.Fatalf("got %v and no header event", err)
			}
			h := (<-events).(evHeader)
			if !slices.Equal(h.offered, tc.offered) {
				t.Fatalf("offered %v, want %v", h.offered, tc.offered)
			}
		})
	}
}
