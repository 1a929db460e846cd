package pb

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestReadFrame(t *testing.T) {
	var stream bytes.Buffer
	req := &FetchRequest{Cid: []byte("a cid"), SkipNodes: true}
	frame, err := WriteFrame(&stream, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteFrame(&stream, req, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		in     []byte
		frames int   // read whole before the error
		want   error // after them
	}{
		{"two frames", stream.Bytes(), 2, io.EOF},
		{"empty", nil, 0, io.EOF},
		{"cut in a frame", frame[:len(frame)-1], 0, io.ErrUnexpectedEOF},
		{"cut after a length", frame[:1], 0, io.ErrUnexpectedEOF}, // not a clean end between frames
		{"cut in a length", []byte{0x80}, 0, io.ErrUnexpectedEOF},
		{"over the limit", binary.AppendUvarint(nil, 65), 0, ErrBadFrame},
		{"overlong length", bytes.Repeat([]byte{0x80}, binary.MaxVarintLen64+1), 0, ErrBadFrame},
		{"length overflows", append(bytes.Repeat([]byte{0x80}, binary.MaxVarintLen64-1), 2), 0, ErrBadFrame},
		{"not the message", []byte{2, 0xff, 0xff}, 0, ErrBadFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReader(bytes.NewReader(tt.in))
			var buf []byte
			for i := range tt.frames {
				var got FetchRequest
				if err := ReadFrame(r, &got, 64, &buf); err != nil || string(got.GetCid()) != "a cid" || !got.GetSkipNodes() {
					t.Fatalf("frame %d: %v, %v", i, &got, err)
				}
			}
			err := ReadFrame(r, &FetchRequest{}, 64, &buf)
			if tt.want == io.EOF && err != io.EOF || !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzReadFrame reads frames from any bytes: each is a FetchRequest or an
// error ends the stream, and the buffer never grows past the limit.
func FuzzReadFrame(f *testing.F) {
	var stream bytes.Buffer
	_, _ = WriteFrame(&stream, &FetchRequest{Cid: []byte("x"), Ranges: []*LeafRange{{Start: 1, End: 2}}}, nil)
	f.Add(stream.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 256
		r := bufio.NewReader(bytes.NewReader(data))
		var buf []byte
		for {
			err := ReadFrame(r, &FetchRequest{}, limit, &buf)
			if cap(buf) > limit {
				t.Fatalf("buffer of %d bytes for a %d-byte limit", cap(buf), limit)
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrBadFrame) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("reading from memory: %v", err)
				}
				return
			}
		}
	})
}
