package fetch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"

	cid "github.com/ipfs/go-cid"
	"golang.org/x/time/rate"
)

// A leaf can cross the wire in pieces, each checked against the outboard
// as it arrives: the frame is the same Block frame, written by a provider
// that does not hold the leaf whole yet (it is receiving it) in the pieces
// it has, and read by a requester that has the outboard in the same
// pieces. Neither needs the other to do so: the bytes are those
// pb.WriteFrame writes.

// blockPrefix returns the bytes pb.WriteFrame writes before the data of the
// FetchFrame holding Block{index: idx, data: size bytes}, size > 0: the
// frame's length, the block's tag and length, the index (omitted when 0,
// as protobuf omits a zero field) and the data's tag and length.
func blockPrefix(idx uint64, size int) []byte {
	var inner []byte
	if idx != 0 {
		inner = binary.AppendUvarint(append(inner, 0x08), idx)
	}
	inner = binary.AppendUvarint(append(inner, 0x12), uint64(size))
	block := len(inner) + size
	frame := 1 + uvarintLen(uint64(block)) + block
	out := binary.AppendUvarint(nil, uint64(frame))
	out = binary.AppendUvarint(append(out, 0x12), uint64(block))
	return append(out, inner...)
}

func uvarintLen(v uint64) int { return len(binary.AppendUvarint(nil, v)) }

// leafPieces is how a request reads a leaf in pieces: the outboard to
// check them against and, when the node serves the leaf on as it arrives,
// where to put each verified piece.
type leafPieces struct {
	ob      *outboard
	flow    *flowLeaf // nil: not served on; else given back to flows (done)
	flows   *flows
	started func(cid.Cid, uint64) // the leaf's first piece verified
	root    cid.Cid
	piece   func() // a piece verified (the request is not silent)
}

// done ends the read of the leaf: see flows.unfill.
func (lp leafPieces) done(idx uint64) {
	if lp.flow != nil {
		lp.flows.unfill(lp.root, idx, lp.flow)
	}
}

// readPieces reads leaf idx of size bytes from br if the frame there is
// its Block frame as pb.WriteFrame writes it, checking each piece against
// the outboard as it arrives and serving on those that match; ok is false,
// with nothing read, when it is not (an error frame, or a peer that
// encodes otherwise: the caller reads the frame whole). After a piece that
// does not match (mismatch), it reads the rest of the leaf without serving
// it on: the leaf's CID then tells whether the sender's bytes or the
// outboard are false. deadline renews the stream's read deadline, once a
// piece.
func readPieces(br *bufio.Reader, idx uint64, size int, lp leafPieces, buf *[]byte, deadline func()) (data []byte, ok, mismatch bool, err error) {
	prefix := blockPrefix(idx, size)
	if p, err := br.Peek(len(prefix)); err != nil || !bytes.Equal(p, prefix) {
		return nil, false, false, nil
	}
	_, _ = br.Discard(len(prefix))
	if cap(*buf) < size {
		*buf = make([]byte, size)
	}
	data = (*buf)[:size]
	for k, off := 0, 0; off < size; k++ {
		end := min(off+PieceSize, size)
		p := data[off:end]
		if _, err := io.ReadFull(br, p); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, true, mismatch, fmt.Errorf("leaf %d at byte %d: %w", idx, off, err)
		}
		if !mismatch && !lp.ob.check(idx, k, p) {
			mismatch = true
		}
		if !mismatch && lp.flow != nil && lp.flow.add(off, p) && lp.started != nil {
			lp.started(lp.root, idx)
		}
		if !mismatch && lp.piece != nil && end < size {
			lp.piece()
		}
		off = end
		deadline()
	}
	return data, true, mismatch, nil
}

// sendFlowing sends leaf idx of s's expert as it arrives here: the Block
// frame's prefix, then each verified piece once there is one. It waits at
// most leafPatience for the next, as a requester would for a leaf.
func (p *Provider) sendFlowing(ctx context.Context, s *servedStream, l *flowLeaf, idx uint64, lim *rate.Limiter) error {
	if s.choked.Load() {
		return p.refuseBusy(s, BusyChoked, 0, "choked: upload slot given to a waiting peer")
	}
	size := len(l.data)
	w := meteredWriter{p, s}
	write := func(b []byte) error {
		p.metered(s, (*slots).Writing)
		_, err := w.Write(b)
		p.metered(s, (*slots).Idle)
		return err
	}
	if err := write(blockPrefix(idx, size)); err != nil {
		return err
	}
	for off := 0; off < size; {
		wctx, cancel := context.WithTimeout(ctx, leafPatience)
		b, err := l.next(wctx, off)
		cancel()
		if err != nil {
			return fmt.Errorf("leaf %d under way: %w", idx, err)
		}
		if err := wait(ctx, lim, len(b)); err != nil {
			return err
		}
		if err := write(b); err != nil {
			return err
		}
		off += len(b)
	}
	return nil
}
