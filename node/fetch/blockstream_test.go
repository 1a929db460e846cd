package fetch

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/expertd/expertd/node/unixfs"
	pb "github.com/expertd/expertd/proto"
)

// blockPrefix is byte for byte what pb.WriteFrame writes before a block's
// data, so a leaf sent in pieces is the frame a whole one is.
func TestBlockPrefixIsWriteFrame(t *testing.T) {
	for _, idx := range []uint64{0, 1, 127, 128, 300000, 1 << 40} {
		for _, size := range []int{1, 127, 128, PieceSize, PieceSize + 1, unixfs.ChunkSize} {
			data := randomBytes(size, idx)
			var w bytes.Buffer
			if _, err := pb.WriteFrame(&w, &pb.FetchFrame{Body: &pb.FetchFrame_Block{Block: &pb.Block{Index: idx, Data: data}}}, nil); err != nil {
				t.Fatal(err)
			}
			want := w.Bytes()
			got := append(blockPrefix(idx, size), data...)
			if !bytes.Equal(got, want) {
				t.Fatalf("leaf %d of %d bytes: prefix %x, WriteFrame %x", idx, size, got[:len(got)-size], want[:min(len(want), 24)])
			}
		}
	}
}

// pieceLeaf is a one-leaf layout of data with its checked outboard.
func pieceLeaf(t testing.TB, data []byte) (*unixfs.Layout, *outboard) {
	t.Helper()
	l := addFile(t, newMem(), data)
	ob, hash := outboardHash(t, data)
	o, err := newOutboard(l, ob, hash)
	if err != nil {
		t.Fatal(err)
	}
	return l, o
}

func TestReadPieces(t *testing.T) {
	data := randomBytes(3*PieceSize+10, 7)
	l, ob := pieceLeaf(t, data)
	frame := func(d []byte) *bufio.Reader {
		var w bytes.Buffer
		if _, err := pb.WriteFrame(&w, &pb.FetchFrame{Body: &pb.FetchFrame_Block{Block: &pb.Block{Index: 0, Data: d}}}, nil); err != nil {
			t.Fatal(err)
		}
		return bufio.NewReader(&w)
	}
	size := int(l.Size)
	var buf []byte
	lf := &flowLeaf{data: make([]byte, size), wake: make(chan struct{})}
	got, ok, mismatch, err := readPieces(frame(data), 0, size, leafPieces{ob: ob, flow: lf}, &buf, func() {})
	if err != nil || !ok || mismatch || !bytes.Equal(got, data) {
		t.Fatalf("good leaf: ok %v mismatch %v err %v equal %v", ok, mismatch, err, bytes.Equal(got, data))
	}
	if lf.verified() != size {
		t.Fatalf("served on %d bytes of %d", lf.verified(), size)
	}

	bad := bytes.Clone(data)
	bad[2*PieceSize+3] ^= 0x80
	lf = &flowLeaf{data: make([]byte, size), wake: make(chan struct{})}
	got, ok, mismatch, err = readPieces(frame(bad), 0, size, leafPieces{ob: ob, flow: lf}, &buf, func() {})
	if !ok || err != nil || !mismatch || !bytes.Equal(got, bad) {
		t.Fatalf("bad piece: ok %v mismatch %v err %v; want the whole leaf read, for its CID to judge", ok, mismatch, err)
	}
	if lf.verified() != 2*PieceSize {
		t.Fatalf("served on %d bytes, want the 2 pieces before the bad one", lf.verified())
	}

	// A frame cut short is an error, not a leaf.
	cut := frame(data)
	short, _ := io.ReadAll(cut)
	if _, ok, _, err := readPieces(bufio.NewReader(bytes.NewReader(short[:len(short)-1])), 0, size, leafPieces{ob: ob}, &buf, func() {}); !ok || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut frame: ok %v err %v", ok, err)
	}

	// Another frame (an error, a block of another size or index) is left
	// whole for readMsg.
	var w bytes.Buffer
	if _, err := pb.WriteFrame(&w, &pb.FetchFrame{Body: &pb.FetchFrame_Error{Error: &pb.FetchError{Code: pb.FetchError_BUSY}}}, nil); err != nil {
		t.Fatal(err)
	}
	for name, br := range map[string]*bufio.Reader{
		"error":       bufio.NewReader(bytes.NewReader(w.Bytes())),
		"other size":  frame(data[:size-1]),
		"other index": bufio.NewReader(bytes.NewReader(append(blockPrefix(1, size), data...))),
	} {
		before := br.Buffered()
		if _, ok, _, err := readPieces(br, 0, size, leafPieces{ob: ob}, &buf, func() {}); ok || err != nil {
			t.Fatalf("%s: ok %v err %v", name, ok, err)
		}
		var f pb.FetchFrame
		var b []byte
		if err := pb.ReadFrame(br, &f, maxBlockFrame, &b); err != nil {
			t.Fatalf("%s: the frame is not left whole (%d buffered before): %v", name, before, err)
		}
	}
}

// FuzzReadPieces feeds readPieces any bytes: it never panics, never
// returns as matching a leaf that is not the one the outboard describes,
// and serves on only pieces of it.
func FuzzReadPieces(f *testing.F) {
	data := randomBytes(2*PieceSize+5, 9)
	l, ob := pieceLeaf(f, data)
	size := int(l.Size)
	var good bytes.Buffer
	if _, err := pb.WriteFrame(&good, &pb.FetchFrame{Body: &pb.FetchFrame_Block{Block: &pb.Block{Data: data}}}, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:40])
	f.Add(blockPrefix(0, size))
	f.Add([]byte{0x05, 0x1a, 0x02, 0x08, 0x02})
	f.Fuzz(func(t *testing.T, in []byte) {
		var buf []byte
		lf := &flowLeaf{data: make([]byte, size), wake: make(chan struct{})}
		got, ok, mismatch, err := readPieces(bufio.NewReader(bytes.NewReader(in)), 0, size, leafPieces{ob: ob, flow: lf}, &buf, func() {})
		if !ok && err != nil {
			t.Fatalf("not read, yet an error: %v", err)
		}
		if ok && err == nil && !mismatch && !bytes.Equal(got, data) {
			t.Fatal("a leaf other than the outboard's passed")
		}
		if n := lf.verified(); !bytes.Equal(lf.data[:n], data[:n]) {
			t.Fatal("served on bytes that are not the leaf's")
		}
	})
}
