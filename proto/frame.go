package pb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	gproto "google.golang.org/protobuf/proto"
)

// ErrBadFrame marks a frame that cannot be one: a length over the limit or
// longer than any uvarint, or a body that is not the message.
var ErrBadFrame = errors.New("proto: malformed frame")

// WriteFrame writes m to w with a uvarint length prefix, the framing of
// every expertd stream protocol, marshalling into buf (reused, returned
// grown) so a stream writes each frame in one call.
func WriteFrame(w io.Writer, m gproto.Message, buf []byte) ([]byte, error) {
	size := gproto.Size(m)
	buf = binary.AppendUvarint(buf[:0], uint64(size))
	buf, err := gproto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf, m)
	if err != nil {
		return buf, err
	}
	_, err = w.Write(buf)
	return buf, err
}

// ReadFrame reads one frame written by WriteFrame, of at most limit bytes,
// into m, reusing *buf (grown when needed): it never allocates more than
// limit for a frame, whatever its length prefix says. It returns io.EOF
// only at a clean end between frames, an error wrapping ErrBadFrame for a
// malformed or oversized frame, and other read errors wrapped (a frame cut
// short is io.ErrUnexpectedEOF).
func ReadFrame(r *bufio.Reader, m gproto.Message, limit int, buf *[]byte) error {
	n, err := readLength(r, limit)
	if err != nil {
		return err
	}
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF { // a frame cut after its length is no clean end
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("reading a %d-byte frame: %w", n, err)
	}
	if err := gproto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	return nil
}

// readLength reads the uvarint length of a frame of at most limit bytes.
// Unlike binary.ReadUvarint, it tells a malformed length (ErrBadFrame: over
// limit, or longer than any uvarint) from a failed read.
func readLength(r io.ByteReader, limit int) (int, error) {
	var n uint64
	for i := range binary.MaxVarintLen64 {
		b, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				if i == 0 {
					return 0, io.EOF
				}
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("reading a frame length: %w", err)
		}
		if i == binary.MaxVarintLen64-1 && b > 1 {
			return 0, fmt.Errorf("%w: length overflows 64 bits", ErrBadFrame)
		}
		n |= uint64(b&0x7f) << (7 * i)
		if n > uint64(limit) {
			return 0, fmt.Errorf("%w: more than %d bytes", ErrBadFrame, limit)
		}
		if b < 0x80 {
			return int(n), nil
		}
	}
	return 0, fmt.Errorf("%w: length of more than %d bytes", ErrBadFrame, binary.MaxVarintLen64)
}
