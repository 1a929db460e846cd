package fetch

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/expertd/expertd/node/unixfs"
)

// PieceSize is the unit a leaf is verified in as it arrives, below the
// leaf: the outboard holds the SHA-256 of each PieceSize piece of each
// leaf. A node serves a leaf it is still receiving piece by piece, each
// checked first, so a leaf crosses a swarm hop by hop at the pace of its
// pieces (26 ms at 20 Mbit/s), not of whole leaves (0.42 s). The CID rule
// is untouched: a leaf is stored only once it verifies against its CID.
const PieceSize = 64 << 10

// pieces is the number of pieces of a leaf of size bytes.
func pieces(size uint64) int { return int((size + PieceSize - 1) / PieceSize) }

// Outboard returns the outboard of the container read from r: the
// SHA-256 of each PieceSize piece of each unixfs.ChunkSize leaf, in order.
func Outboard(r io.Reader) ([]byte, error) {
	var ob []byte
	leaf := make([]byte, unixfs.ChunkSize)
	for {
		n, err := io.ReadFull(r, leaf)
		ob = appendPieceHashes(ob, leaf[:n])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return ob, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// appendPieceHashes appends to ob the SHA-256 of each PieceSize piece of
// leaf (the last may be shorter).
func appendPieceHashes(ob, leaf []byte) []byte {
	for off := 0; off < len(leaf); off += PieceSize {
		h := sha256.Sum256(leaf[off:min(off+PieceSize, len(leaf))])
		ob = append(ob, h[:]...)
	}
	return ob
}

// OutboardHash returns the SHA-256 of the outboard of the file at path,
// what a publisher signs in its publication.
func OutboardHash(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ob, err := Outboard(f)
	if err != nil {
		return nil, fmt.Errorf("outboard of %s: %w", path, err)
	}
	h := sha256.Sum256(ob)
	return h[:], nil
}

// outboard is an expert's checked outboard with the index of each leaf's
// first piece.
type outboard struct {
	hashes []byte
	first  []int // first[i]: leaf i's first piece; first[len] = all
}

// errOutboard is a leaf that matched the publication's outboard piece by
// piece but not its CID: the signed outboard is false. The provider is
// dropped for the fetch, not marked bad: it may have forwarded pieces
// that verified against the same outboard.
var errOutboard = errors.New("fetch: the publication's outboard")

// newOutboard checks ob against the layout and the expected hash.
func newOutboard(layout *unixfs.Layout, ob, want []byte) (*outboard, error) {
	first := make([]int, len(layout.Leaves)+1)
	for i, l := range layout.Leaves {
		first[i+1] = first[i] + pieces(l.Size)
	}
	if len(ob) != first[len(layout.Leaves)]*sha256.Size {
		return nil, fmt.Errorf("%w: an outboard of %d bytes for %d pieces", ErrVerify, len(ob), first[len(layout.Leaves)])
	}
	if h := sha256.Sum256(ob); !bytes.Equal(h[:], want) {
		return nil, fmt.Errorf("%w: the outboard sent does not match the publication's hash", ErrVerify)
	}
	return &outboard{hashes: ob, first: first}, nil
}

// check verifies piece k of leaf i.
func (o *outboard) check(leaf uint64, k int, p []byte) bool {
	j := o.first[leaf] + k
	if j >= o.first[leaf+1] {
		return false
	}
	h := sha256.Sum256(p)
	return bytes.Equal(h[:], o.hashes[j*sha256.Size:(j+1)*sha256.Size])
}

// FetchOption sets how one fetch runs.
type FetchOption func(*fetchOptions)

type fetchOptions struct {
	outboard []byte
}

// WithOutboard gives a fetch the SHA-256 of the expert's outboard, from
// its publisher's signed publication: the fetch asks providers for the
// outboard, checks each 64 KiB piece of a leaf as it arrives and, with
// Options.Provider set, lets the node serve the leaf on before it is whole.
func WithOutboard(hash []byte) FetchOption {
	return func(o *fetchOptions) {
		if len(hash) == sha256.Size {
			o.outboard = hash
		}
	}
}
