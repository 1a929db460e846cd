package unixfs

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// Block is one block of a file's DAG: its CID and its serialized bytes.
type Block struct {
	Cid  cid.Cid
	Data []byte
}

// sumCID returns the CIDv1 of data under codec (cid.Raw or cid.DagProtobuf).
func sumCID(codec uint64, data []byte) cid.Cid {
	d := sha256.Sum256(data)
	h, err := mh.Encode(d[:], mh.SHA2_256)
	if err != nil {
		panic("unixfs: encoding a sha2-256 multihash: " + err.Error()) // cannot happen for a 32-byte digest
	}
	return cid.NewCidV1(codec, h)
}

// checkCID returns the sha2-256 digest inside c, or ErrUnsupportedCID when c
// is not a CIDv1 of codec raw or dag-pb with a 32-byte sha2-256 multihash.
func checkCID(c cid.Cid) ([]byte, error) {
	if !c.Defined() {
		return nil, fmt.Errorf("%w: undefined", ErrUnsupportedCID)
	}
	p := c.Prefix()
	if p.Version != 1 {
		return nil, fmt.Errorf("%w: %s is CIDv%d, want CIDv1", ErrUnsupportedCID, c, p.Version)
	}
	if p.Codec != cid.Raw && p.Codec != cid.DagProtobuf {
		return nil, fmt.Errorf("%w: %s has codec 0x%x, want raw or dag-pb", ErrUnsupportedCID, c, p.Codec)
	}
	dec, err := mh.Decode(c.Hash())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnsupportedCID, c, err)
	}
	if dec.Code != mh.SHA2_256 || len(dec.Digest) != sha256.Size {
		return nil, fmt.Errorf("%w: %s uses hash 0x%x of %d bytes, want sha2-256 of 32",
			ErrUnsupportedCID, c, dec.Code, len(dec.Digest))
	}
	return dec.Digest, nil
}

// VerifyBlock reports whether data is the block named by c: c must be a
// CIDv1 of codec raw or dag-pb hashed with sha2-256 (ErrUnsupportedCID
// otherwise) and the sha2-256 of data must equal its digest
// (ErrHashMismatch otherwise). It does not look inside the block.
func VerifyBlock(c cid.Cid, data []byte) error {
	want, err := checkCID(c)
	if err != nil {
		return err
	}
	got := sha256.Sum256(data)
	if !bytes.Equal(got[:], want) {
		return fmt.Errorf("%w: %s (%d bytes)", ErrHashMismatch, c, len(data))
	}
	return nil
}
