package slogutil

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
)

// The helpers write their concept under its one key, in the form a reader
// searches for: a CID and a peer ID as their strings.
func TestKeys(t *testing.T) {
	h, err := multihash.Sum([]byte("x"), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	c := cid.NewCidV1(cid.Raw, h)
	p, err := peer.IDFromBytes(h)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := With(slog.New(slog.NewTextHandler(&buf, nil)), "store")
	log.Info("m", CID(c), CID(c.String()), Peer(p), Self(p), Err(errors.New("boom")), Path("/a b"), Name("sql"), Bytes(uint64(7)))
	want := "component=store cid=" + c.String() + " cid=" + c.String() + " peer=" + p.String() + " self=" + p.String() +
		` err=boom path="/a b" name=sql bytes=7`
	if got := strings.TrimSpace(buf.String()); !strings.HasSuffix(got, want) {
		t.Fatalf("got  %s\nwant ...%s", got, want)
	}
}
