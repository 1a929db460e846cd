package fetch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/unixfs"
	pb "github.com/expertd/expertd/proto"
)

// streamReq is a request as its stream sees it.
type streamReq struct {
	id    reqID
	peer  peer.ID
	msg   *pb.FetchRequest
	known *unixfs.Layout // the layout when it was sent; nil: the header tells it
	path  *relayPath     // set when the stream runs through a relay (relay.go)
	// stored is shared by the fetch's requests: a leaf another request
	// already stored is not written again (nil: write every leaf).
	stored *storedLeaves
	flow   *fetchFlow // nil: leaves are read whole
}

// wire is the request message of a.
func (a ask) wire(root cid.Cid) *pb.FetchRequest {
	if a.isShare() {
		return &pb.FetchRequest{Cid: root.Bytes(), Part: a.part, Parts: a.parts, HeaderWhenBusy: true}
	}
	return &pb.FetchRequest{Cid: root.Bytes(), Ranges: toRanges(a.leaves), SkipNodes: true, HeaderWhenBusy: true}
}

// request runs one request against one provider on a stream of its own:
// it verifies the header (unless the layout is known), then every leaf,
// storing each, and tells events of both.
func (f *Fetcher) request(ctx context.Context, r streamReq, root cid.Cid, events chan<- event) (err error) {
	s, err := openStream(ctx, f.host, r.peer, f.opts.DirectWait)
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if r.path = pathOf(s.Conn()); r.path != nil { // NAT traversal: see relay.go
		f.opts.Logger.Info("fetch: through a relay", "peer", r.peer, "relay", r.path.relay,
			"limit_bytes", r.path.limitBytes, "limit_duration", r.path.limitDuration)
		moved := moveWhenDirect(f.host, r.peer, s)
		defer func() {
			if moved() {
				err = errMoved
			} else if err != nil {
				err = r.path.ended(err)
			}
		}()
		if r.path.limitBytes > 0 && r.known == nil {
			if err := f.probeRelayLimit(ctx, r, root); err != nil {
				_ = s.Reset()
				return err
			}
		}
	}
	if err := writeRequest(s, r.msg); err != nil {
		return err
	}
	events <- evOpened{req: r.id}
	br := bufio.NewReaderSize(s, 256<<10)
	err = f.receive(ctx, br, func() { _ = s.SetReadDeadline(time.Now().Add(f.opts.IdleTimeout)) }, r, root, events)
	if err != nil {
		if err = leafGivenUp(err); errors.Is(err, ErrBusy) {
			return err
		}
		var re *remoteErr
		if !errors.As(err, &re) {
			_ = s.Reset()
		}
		return err
	}
	return nil
}

// remoteErr marks an error the provider reported in a FetchError frame: the
// stream ended cleanly.
type remoteErr struct{ err error }

func (e *remoteErr) Error() string { return e.err.Error() }
func (e *remoteErr) Unwrap() error { return e.err }

// receive reads a provider's answer from br: the header (verified against
// root unless the layout is known), then every leaf the header promises,
// each verified and stored, then the end of the stream. deadline is called
// before each frame. It is the code that faces untrusted bytes (FuzzReceive).
func (f *Fetcher) receive(ctx context.Context, br *bufio.Reader, deadline func(), r streamReq, root cid.Cid, events chan<- event) error {
	var buf []byte
	var frame pb.FetchFrame
	deadline()
	hdr, err := readHeader(br, &frame, &buf, "the header")
	if err != nil {
		return err
	}
	layout := r.known
	if layout == nil {
		if layout, err = remoteLayout(ctx, root, hdr.GetSize(), hdr.GetLeaves(), hdr.GetNodes(), f.opts.MaxSize); err != nil {
			return err
		}
	} else if hdr.GetSize() != layout.Size || hdr.GetLeaves() != uint64(len(layout.Leaves)) {
		return fmt.Errorf("%w: header says %d bytes in %d leaves, expected %d in %d", ErrVerify, hdr.GetSize(), hdr.GetLeaves(), layout.Size, len(layout.Leaves))
	}
	asked := askedLeaves(r.msg, uint64(len(layout.Leaves)))
	offered, err := checkRanges(asked, hdr.GetRanges(), uint64(len(layout.Leaves)))
	if err != nil {
		return err
	}
	has, err := decodeHave(hdr.GetHave(), uint64(len(layout.Leaves)))
	if err != nil {
		return err
	}
	if hdr.GetBusy() {
		if len(offered) > 0 || !r.msg.GetHeaderWhenBusy() {
			return fmt.Errorf("%w: a busy header that offers leaves, or was not asked for", ErrFrame)
		}
		events <- evHeader{req: r.id, layout: layout, has: has}
		if err := readMsg(br, &frame, maxHeaderFrame, &buf); err != nil {
			return expected(err, "the BUSY frame")
		}
		if e := frame.GetError(); e != nil && e.GetCode() == pb.FetchError_BUSY {
			return &remoteErr{remoteError(e)}
		}
		return fmt.Errorf("%w: a busy header not followed by BUSY", ErrFrame)
	}
	if err := r.flow.took(layout, hdr.GetOutboard()); err != nil {
		return err
	}
	if err := r.path.check(layout, offered); err != nil {
		return err
	}
	if len(offered) == 0 && hasAsked(asked, has) {
		// An honest provider offers at least one asked leaf it has: one
		// that says it has some and offers none would keep the requester
		// waiting on it (and away from full providers) for nothing.
		return fmt.Errorf("%w: provider offers none of the asked leaves it says it has", ErrFrame)
	}
	events <- evHeader{req: r.id, layout: layout, offered: offered, has: has}
	var pieceBuf []byte
	for _, idx := range offered {
		deadline()
		leaf := layout.Leaves[idx]
		data, pieces, err := f.readLeaf(br, &frame, &buf, &pieceBuf, r, layout, idx, deadline, events)
		if err != nil {
			return err
		}
		err = leaf.Verify(data)
		switch {
		case pieces == piecesMatched && err != nil:
			// Every piece matched the signed outboard but the leaf is not
			// its CID's: the outboard is false (its publisher's doing),
			// and the sender may have forwarded pieces that verified.
			r.flow.distrust()
			return fmt.Errorf("%w: leaf %d matched it piece by piece but not its CID: %w", errOutboard, idx, err)
		case pieces == piecesMismatched && err == nil:
			// The sender's leaf is its CID's: the outboard is false.
			r.flow.distrust()
		case err != nil:
			return fmt.Errorf("%w: leaf %d: %w", ErrVerify, idx, err)
		}
		news := false
		if !r.stored.has(idx) {
			if err := f.blocks.PutBlock(leaf.Cid, data); err != nil {
				return fmt.Errorf("store leaf %d: %w", idx, err)
			}
			news = r.stored.add(idx)
		}
		if f.opts.Received != nil {
			f.opts.Received(r.peer, len(data))
		}
		if news && f.opts.Stored != nil {
			f.opts.Stored(root, idx)
		}
		events <- evLeaf{req: r.id, index: idx, size: len(data)}
	}
	deadline()
	if _, err := br.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: data after the last leaf", ErrFrame)
	}
	return nil
}

// How a leaf was read: whole, or in pieces that all matched the outboard,
// or in pieces some of which did not.
const (
	readWhole = iota
	piecesMatched
	piecesMismatched
)

// readLeaf reads the frame of leaf idx, in pieces checked as they arrive
// when the fetch has the outboard, else whole, and returns its data and
// how it was read; the caller checks its CID.
func (f *Fetcher) readLeaf(br *bufio.Reader, frame *pb.FetchFrame, buf, pieceBuf *[]byte, r streamReq, layout *unixfs.Layout, idx uint64, deadline func(), events chan<- event) (data []byte, how int, err error) {
	if lp, ok := r.flow.pieces(layout, idx); ok {
		lp.piece = func() { events <- evPiece{req: r.id} }
		defer lp.done(idx)
		data, ok, mismatch, err := readPieces(br, idx, int(layout.Leaves[idx].Size), lp, pieceBuf, deadline)
		if mismatch {
			how = piecesMismatched
		} else {
			how = piecesMatched
		}
		if ok || err != nil {
			return data, how, err
		}
	}
	if err := readMsg(br, frame, maxBlockFrame, buf); err != nil {
		return nil, readWhole, expected(err, fmt.Sprintf("leaf %d", idx))
	}
	if e := frame.GetError(); e != nil {
		return nil, readWhole, &remoteErr{remoteError(e)}
	}
	b := frame.GetBlock()
	if b == nil || b.GetIndex() != idx {
		return nil, readWhole, fmt.Errorf("%w: expected leaf %d", ErrFrame, idx)
	}
	return b.GetData(), readWhole, nil
}

// readHeader reads a stream's first frame, what: a header, or a FetchError
// (a remoteErr).
func readHeader(br *bufio.Reader, frame *pb.FetchFrame, buf *[]byte, what string) (*pb.FetchHeader, error) {
	if err := readMsg(br, frame, maxHeaderFrame, buf); err != nil {
		return nil, expected(err, what)
	}
	if e := frame.GetError(); e != nil {
		return nil, &remoteErr{remoteError(e)}
	}
	hdr := frame.GetHeader()
	if hdr == nil {
		return nil, fmt.Errorf("%w: first frame is not a header", ErrFrame)
	}
	return hdr, nil
}

// checkRanges checks that the provider will send asked leaves only, in
// order (a partial or loaded provider offers some of them), and returns
// those leaves: what it offers.
func checkRanges(asked []uint64, got []*pb.LeafRange, n uint64) ([]uint64, error) {
	var offered []uint64
	j := 0
	for _, g := range got {
		if g.GetStart() >= g.GetEnd() || g.GetEnd() > n {
			return nil, fmt.Errorf("%w: provider offers range [%d, %d) of %d leaves", ErrFrame, g.GetStart(), g.GetEnd(), n)
		}
		for i := g.GetStart(); i < g.GetEnd(); i++ {
			for j < len(asked) && asked[j] < i {
				j++
			}
			if j == len(asked) || asked[j] != i {
				return nil, fmt.Errorf("%w: provider offers leaf %d, not asked or out of order", ErrFrame, i)
			}
			offered = append(offered, i)
			j++
		}
	}
	return offered, nil
}

// hasAsked reports whether has (nil: every leaf) has an asked leaf.
func hasAsked(asked []uint64, has []bool) bool {
	for _, i := range asked {
		if has == nil || has[i] {
			return true
		}
	}
	return false
}

// askedLeaves lists, ascending, the leaves req asks of n: those of the
// ranges the provider resolves it to (wanted; a requester's own request is
// valid for the layout it was made for).
func askedLeaves(req *pb.FetchRequest, n uint64) []uint64 {
	rs, _ := wanted(req, n)
	var out []uint64
	for _, r := range rs {
		for i := r.GetStart(); i < r.GetEnd(); i++ {
			out = append(out, i)
		}
	}
	return out
}
