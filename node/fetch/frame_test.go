package fetch

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"

	pb "github.com/expertd/expertd/proto"
)

// errReader fails every read with err, as a stream past its deadline does.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// readMsg tells a peer's malformed frame (ErrFrame) from a stream that
// failed or was cut short (not ErrFrame), and a clean end from both.
func TestReadMsgErrors(t *testing.T) {
	frame := response(t, &pb.FetchRequest{Cid: []byte("a cid")})
	tests := []struct {
		name      string
		in        io.Reader
		want      error
		malformed bool
	}{
		{"clean end", bytes.NewReader(nil), io.EOF, false},
		{"cut short", bytes.NewReader(frame[:len(frame)-1]), io.ErrUnexpectedEOF, false},
		{"deadline", errReader{os.ErrDeadlineExceeded}, os.ErrDeadlineExceeded, false},
		{"over the limit", bytes.NewReader(binary.AppendUvarint(nil, maxRequestFrame+1)), pb.ErrBadFrame, true},
		{"not the message", bytes.NewReader([]byte{2, 0xff, 0xff}), pb.ErrBadFrame, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var req pb.FetchRequest
			var buf []byte
			err := readMsg(bufio.NewReader(tc.in), &req, maxRequestFrame, &buf)
			if !errors.Is(err, tc.want) || errors.Is(err, ErrFrame) != tc.malformed {
				t.Fatalf("got %v; want %v, ErrFrame %v", err, tc.want, tc.malformed)
			}
		})
	}
	// Where a frame must follow, a clean end is a stream cut short.
	if err := expected(io.EOF, "the header"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("expected(io.EOF) = %v, want io.ErrUnexpectedEOF", err)
	}
}
