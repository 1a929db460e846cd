package unixfs

import (
	"errors"
	"testing"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func TestVerifyBlock(t *testing.T) {
	data := []byte("an expert, compressed")
	c := sumCID(cid.Raw, data)
	if err := VerifyBlock(c, data); err != nil {
		t.Fatalf("good block: %v", err)
	}
	for i := range data {
		bad := append([]byte(nil), data...)
		bad[i] ^= 1
		if err := VerifyBlock(c, bad); !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	if err := VerifyBlock(c, data[:len(data)-1]); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestVerifyBlockRejectsCIDs(t *testing.T) {
	data := []byte("x")
	sha256mh, _ := mh.Sum(data, mh.SHA2_256, -1)
	sha512mh, _ := mh.Sum(data, mh.SHA2_512, -1)
	short, _ := mh.Sum(data, mh.SHA2_256, 20)
	identity, _ := mh.Sum(data, mh.IDENTITY, -1)
	for name, c := range map[string]cid.Cid{
		"undefined": cid.Undef,
		"CIDv0":     cid.NewCidV0(sha256mh),
		"dag-cbor":  cid.NewCidV1(cid.DagCBOR, sha256mh),
		"sha2-512":  cid.NewCidV1(cid.Raw, sha512mh),
		"truncated": cid.NewCidV1(cid.Raw, short),
		"identity":  cid.NewCidV1(cid.Raw, identity),
	} {
		if err := VerifyBlock(c, data); !errors.Is(err, ErrUnsupportedCID) {
			t.Errorf("%s: %v, want ErrUnsupportedCID", name, err)
		}
	}
}

func TestLeafVerify(t *testing.T) {
	data := []byte("leaf")
	l := Leaf{Cid: sumCID(cid.Raw, data), Size: 4}
	if err := l.Verify(data); err != nil {
		t.Fatal(err)
	}
	if err := l.Verify([]byte("lea!")); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("flipped: %v", err)
	}
	l.Size = 5
	if err := l.Verify(data); !errors.Is(err, ErrBadLayout) {
		t.Fatalf("wrong size: %v", err)
	}
}
