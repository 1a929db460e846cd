package fetch

import (
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/expertd/expertd/node/unixfs"
	pb "github.com/expertd/expertd/proto"
)

// How a provider says BUSY: why (counted through ProviderOptions.Busy),
// and, when the requester asked for one, a header first with the layout
// and what it holds.

// Why a provider answers BUSY (ProviderOptions.Busy).
const (
	BusyStreams = "streams"  // too many fetch streams open, from the peer or in all
	BusySlots   = "slots"    // every upload slot taken
	BusyUplink  = "uplink"   // its uplink has leaves to send for others of the expert
	BusyShare   = "share"    // a stream given many leaves makes way once others ask
	BusyChoked  = "choked"   // its upload slot went to a peer that waited
	BusyWatches = "watches"  // too many watch streams
	BusyGivenUp = "given-up" // a leaf offered as under way here was given up
)

// streamLeafGivenUp is the code a provider resets a stream with when a
// leaf it was sending as it arrived was given up here (the requests that
// brought it ended without it): the frame under way cannot be ended with
// a BUSY, but the requester takes the code as one. An application code,
// below the range go-libp2p keeps for its own (0x1000 on).
const streamLeafGivenUp network.StreamErrorCode = 0x0e01

// leafGivenUp turns a reset with streamLeafGivenUp into a BUSY answer;
// other errors are returned as they are.
func leafGivenUp(err error) error {
	var se *network.StreamError
	if errors.As(err, &se) && se.Remote && se.ErrorCode == streamLeafGivenUp {
		return &busyError{msg: "the leaf under way there was given up"}
	}
	return err
}

// busyBecause counts a BUSY answer (ProviderOptions.Busy).
func (p *Provider) busyBecause(reason string) {
	if p.opts.Busy != nil {
		p.opts.Busy(reason)
	}
}

// refuseBusy counts a BUSY answer for reason and ends s with it, asking
// to come back after retry (0: no hint).
func (p *Provider) refuseBusy(s *servedStream, reason string, retry time.Duration, format string, args ...any) error {
	p.busyBecause(reason)
	return p.refuseAfter(s, pb.FetchError_BUSY, retry, format, args...)
}

// busy refuses req with BUSY and when to ask again; a header goes first
// if the requester takes one (it learns the layout and the holdings).
func (p *Provider) busy(s *servedStream, req *pb.FetchRequest, layout *unixfs.Layout, reason, format string, args ...any) error {
	p.busyBecause(reason)
	if req.GetHeaderWhenBusy() {
		hdr := &pb.FetchHeader{Size: layout.Size, Leaves: uint64(len(layout.Leaves)), Busy: true}
		if !req.GetSkipNodes() {
			for _, b := range layout.Nodes {
				hdr.Nodes = append(hdr.Nodes, b.Data)
			}
		}
		have, whole, err := p.offerable(layout)
		if err != nil {
			return p.refuse(s, pb.FetchError_INTERNAL, "%v", err)
		}
		if !whole {
			hdr.Have = have
		}
		if req.GetOutboard() {
			if hdr.Outboard, err = p.flows.outboard(layout, p.blocks, whole); err != nil {
				return p.refuse(s, pb.FetchError_INTERNAL, "outboard: %v", err)
			}
		}
		_ = s.SetWriteDeadline(time.Now().Add(p.opts.StallTimeout))
		if _, err := pb.WriteFrame(s, &pb.FetchFrame{Body: &pb.FetchFrame_Header{Header: hdr}}, nil); err != nil {
			return &refusal{code: pb.FetchError_BUSY, msg: "header", unsent: err}
		}
	}
	return p.refuseAfter(s, pb.FetchError_BUSY, p.uplink.retry(), format, args...)
}

// allHeld reports whether the bitmap have holds all of n leaves.
func allHeld(have []byte, n int) bool {
	for i := range n {
		if have[i/8]&(1<<(i%8)) == 0 {
			return false
		}
	}
	return true
}
