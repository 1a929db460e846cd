package fetch

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	gproto "google.golang.org/protobuf/proto"

	"github.com/expertd/expertd/node/unixfs"
	pb "github.com/expertd/expertd/proto"
)

// Frame size limits: a request is small; a block frame holds one leaf; a
// header frame holds the internal nodes of an expert up to the size limit.
const (
	maxRequestFrame = 64 << 10
	maxBlockFrame   = unixfs.ChunkSize + 1024
	maxHeaderFrame  = 8 << 20
)

// readMsg reads one frame of at most limit bytes into m, reusing *buf (see
// pb.ReadFrame). It returns io.EOF only at a clean end between frames, an
// ErrFrame for a malformed or oversized frame (the peer's fault), and
// other read errors (a reset, a deadline, a frame cut short:
// io.ErrUnexpectedEOF) wrapped as they are.
func readMsg(r *bufio.Reader, m gproto.Message, limit int, buf *[]byte) error {
	err := pb.ReadFrame(r, m, limit, buf)
	switch {
	case err == nil || err == io.EOF:
		return err
	case errors.Is(err, pb.ErrBadFrame):
		return fmt.Errorf("%w: %w", ErrFrame, err)
	}
	return fmt.Errorf("fetch: %w", err)
}

// expected is readMsg's error where a frame must follow: a clean end there
// is a stream cut short.
func expected(err error, what string) error {
	if err == io.EOF {
		return fmt.Errorf("fetch: stream ended before %s: %w", what, io.ErrUnexpectedEOF)
	}
	return err
}

// remoteError maps a FetchError frame to a sentinel.
func remoteError(e *pb.FetchError) error {
	switch e.GetCode() {
	case pb.FetchError_NOT_FOUND:
		return fmt.Errorf("%w: %s", ErrNotFound, e.GetMessage())
	case pb.FetchError_BUSY:
		return &busyError{msg: e.GetMessage(), retry: min(time.Duration(e.GetRetryMs())*time.Millisecond, maxBusyWait)}
	}
	return fmt.Errorf("%w: %s: %s", ErrRemote, e.GetCode(), e.GetMessage())
}

// busyError is a BUSY answer, with the provider's hint of when it may
// take a request again (0: none; at most maxBusyWait is believed).
type busyError struct {
	msg   string
	retry time.Duration
}

func (e *busyError) Error() string { return fmt.Sprintf("%v: %s", ErrBusy, e.msg) }
func (e *busyError) Unwrap() error { return ErrBusy }

// share returns the part-th of parts contiguous shares of n leaves.
func share(n uint64, part, parts uint32) (start, end uint64) {
	return n * uint64(part) / uint64(parts), n * uint64(part+1) / uint64(parts)
}

// toRanges compresses sorted leaf indices into ranges.
func toRanges(idx []uint64) []*pb.LeafRange {
	var out []*pb.LeafRange
	for _, i := range idx {
		if n := len(out); n > 0 && out[n-1].End == i {
			out[n-1].End++
			continue
		}
		out = append(out, &pb.LeafRange{Start: i, End: i + 1})
	}
	return out
}
