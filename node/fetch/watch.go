package fetch

import (
	"bufio"
	"context"
	"fmt"
	"slices"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/unixfs"
	pb "github.com/expertd/expertd/proto"
)

// watch runs a watch of root at p (the requester's side of have.go): it
// tells events what p holds, from its header, then each Have frame, until
// p holds every leaf or ctx ends. It faces untrusted bytes as receive does
// (FuzzWatch).
func (f *Fetcher) watch(ctx context.Context, p peer.ID, root cid.Cid, layout *unixfs.Layout, events chan<- event) error {
	s, err := openStream(ctx, f.host, p, f.opts.DirectWait)
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	req := &pb.FetchRequest{Cid: root.Bytes(), SkipNodes: true, Watch: true}
	// The write side stays open: closing it (s.Close) ends the watch.
	if err := writeRequest(s, req); err != nil {
		return err
	}
	_ = s.SetReadDeadline(time.Now().Add(f.opts.IdleTimeout))
	err = f.receiveHaves(bufio.NewReaderSize(s, 4096), func() { _ = s.SetReadDeadline(time.Time{}) }, p, layout, events)
	if err != nil {
		_ = s.Reset()
	}
	return err
}

// receiveHaves reads a watch's header (checked against layout) and Have
// frames from br, telling events; header is called once the header is in.
func (f *Fetcher) receiveHaves(br *bufio.Reader, header func(), p peer.ID, layout *unixfs.Layout, events chan<- event) error {
	var buf []byte
	var frame pb.FetchFrame
	hdr, err := readHeader(br, &frame, &buf, "the watch header")
	if err != nil {
		return err
	}
	n := uint64(len(layout.Leaves))
	if hdr.GetSize() != layout.Size || hdr.GetLeaves() != n {
		return fmt.Errorf("%w: header says %d bytes in %d leaves, expected %d in %d", ErrVerify, hdr.GetSize(), hdr.GetLeaves(), layout.Size, n)
	}
	has, err := decodeHave(hdr.GetHave(), n)
	if err != nil {
		return err
	}
	header()
	events <- evHave{peer: p, has: has, header: true}
	if has == nil {
		return nil
	}
	// A holder tells each leaf once, in the header or in one Have, and
	// never sends a Have that tells nothing: a watch costs at most one
	// event per leaf, whatever the peer sends.
	told := slices.Clone(has)
	for {
		if err := readMsg(br, &frame, maxHeaderFrame, &buf); err != nil {
			return expected(err, "the watch's end")
		}
		h := frame.GetHave()
		if h == nil {
			return fmt.Errorf("%w: a watch frame is not a Have", ErrFrame)
		}
		prev := int64(-1)
		for _, i := range h.GetLeaves() {
			if i >= n || int64(i) <= prev {
				return fmt.Errorf("%w: have of leaf %d of %d, not ascending", ErrFrame, i, n)
			}
			if told[i] {
				return fmt.Errorf("%w: have of leaf %d, told before", ErrFrame, i)
			}
			told[i], prev = true, int64(i)
		}
		if len(h.GetLeaves()) == 0 && !h.GetComplete() {
			return fmt.Errorf("%w: a Have that tells nothing", ErrFrame)
		}
		events <- evHave{peer: p, add: h.GetLeaves(), complete: h.GetComplete()}
		if h.GetComplete() {
			return nil
		}
	}
}
