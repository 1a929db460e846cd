package gossip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestReadCatalog: readCatalog on catalogs as encodeCatalog writes them,
// and on malformed streams.
func TestReadCatalog(t *testing.T) {
	key, self := fuzzKey(t)
	o := Options{MaxCatalog: 4, Logger: testLogger()}
	o.defaults()
	s := &Service{self: self, opts: o, log: o.Logger}
	now := time.UnixMilli(1_750_000_000_000)
	serve := func(entries ...Announcement) []byte {
		var b bytes.Buffer
		skipped, _, err := s.encodeCatalog(&b, entries, now)
		if err != nil || skipped != 0 {
			t.Fatalf("encodeCatalog: %d skipped, %v", skipped, err)
		}
		return b.Bytes()
	}
	signed := testAnn(2, self)
	env, err := SignPublication(key, signed)
	if err != nil {
		t.Fatal(err)
	}
	signed.Envelope = env
	renamed := signed
	renamed.Name = "renamed"
	real := serve(testAnn(1, self), signed, renamed)

	for _, tc := range []struct {
		name               string
		data               []byte
		from               []byte // sender, if not self
		accepted, rejected int
		err                error
	}{
		{"empty", nil, nil, 0, 0, nil},
		{"empty frame", []byte{0}, nil, 0, 0, nil},
		{"catalog", real, nil, 2, 1, nil},
		{"two frames", append(serve(testAnn(1, self)), serve(testAnn(2, self))...), nil, 2, 0, nil},
		{"from another peer", real, []byte(testPeers(t, 1)[0]), 0, 3, nil},
		{"too many", append(real, real...), nil, 3, 1, ErrCatalog},
		{"cut in a frame", real[:len(real)-1], nil, 0, 0, io.ErrUnexpectedEOF},
		{"cut after a length", real[:1], nil, 0, 0, io.ErrUnexpectedEOF},
		{"cut in a length", []byte{0x80}, nil, 0, 0, io.ErrUnexpectedEOF},
		{"oversized frame", binary.AppendUvarint(nil, maxCatalogFrame+1), nil, 0, 0, ErrCatalog},
		{"overlong length", bytes.Repeat([]byte{0x80}, binary.MaxVarintLen64+1), nil, 0, 0, ErrCatalog},
		{"garbage frame", []byte{2, 0xff, 0xff}, nil, 0, 0, ErrCatalog},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := self
			if tc.from != nil {
				from = peer.ID(tc.from)
			}
			added := 0
			accepted, rejected, err := s.readCatalog(bytes.NewReader(tc.data), from, func() time.Time { return now }, func(c checked, at time.Time) {
				if c.Provider != from || !at.Equal(now) {
					t.Fatalf("added %s's entry at %v", c.Provider, at)
				}
				added++
			})
			if accepted != tc.accepted || rejected != tc.rejected || added != accepted {
				t.Errorf("accepted %d (added %d), rejected %d; want %d, %d", accepted, added, rejected, tc.accepted, tc.rejected)
			}
			if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("err %v, want %v", err, tc.err)
			}
			if errors.Is(err, io.EOF) {
				t.Errorf("a failed read looks like a clean end: %v", err)
			}
		})
	}
}
