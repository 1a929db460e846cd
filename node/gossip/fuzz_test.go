package gossip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/expert"
	pb "github.com/expertd/expertd/proto"
)

// fuzzKey is a fixed key and its peer ID, so that corpus entries naming it
// as provider, or holding a publication it signed (Ed25519 signatures are
// deterministic), stay valid.
func fuzzKey(t testing.TB) (crypto.PrivKey, peer.ID) {
	sk, pub, err := crypto.GenerateEd25519Key(bytes.NewReader(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sk, id
}

// fuzzNow is the fixed receive time of the fuzz target.
var fuzzNow = time.UnixMilli(1_750_000_000_000)

// FuzzAnnouncement runs what the topic validator runs on every message
// (decode, field checks, provider, time window, envelope): it must not
// panic, must fail only with a sentinel, and what it accepts must
// re-encode to itself.
func FuzzAnnouncement(f *testing.F) {
	key, signer := fuzzKey(f)
	a := testAnn(1, signer)
	a.Time = fuzzNow
	f.Add(rawEncode(f, a))
	a.TargetModules = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
	a.Density = 1
	f.Add(rawEncode(f, a))
	min := Announcement{CID: testCID(2), Metadata: expert.Metadata{
		Size: 1,
	}, Publisher: signer, Provider: signer, Time: fuzzNow.Add(-time.Minute)}
	f.Add(rawEncode(f, min))
	long := a
	long.Name = strings.Repeat("é", maxNameLen/2)
	f.Add(rawEncode(f, long))
	f.Add(mustMarshal(f, &pb.Catalog{Entries: []*pb.Announcement{toWire(a)}}))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x80})
	signed := testAnn(3, signer)
	signed.Time = fuzzNow.Add(-time.Hour) // signed an hour before it is announced
	env, err := SignPublication(key, signed)
	if err != nil {
		f.Fatal(err)
	}
	signed.Time, signed.Envelope = fuzzNow, env
	f.Add(rawEncode(f, signed))
	renamed := signed
	renamed.Name = "not what was signed"
	f.Add(rawEncode(f, renamed))
	garbled := signed
	garbled.Envelope = append(slices.Clone(env[:len(env)-1]), env[len(env)-1]^1)
	f.Add(rawEncode(f, garbled))
	versioned := testAnn(5, signer) // a version of a line
	versioned.Time, versioned.Version = fuzzNow, 3
	if versioned.Envelope, err = SignPublication(key, versioned); err != nil {
		f.Fatal(err)
	}
	f.Add(rawEncode(f, versioned))
	claimed := versioned // the envelope says 3
	claimed.Version = 4
	f.Add(rawEncode(f, claimed))

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeVerify(data, signer, fuzzNow, DefaultTTL)
		got := c.Announcement
		if err != nil {
			if verdict(err) == pubsub.ValidationAccept {
				t.Fatalf("error %v maps to Accept", err)
			}
			for _, s := range []error{ErrInvalid, ErrTooLarge, ErrFuture, ErrStale, ErrNotProvider, ErrPublication} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error without a sentinel: %v", err)
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("accepted an invalid announcement: %v", err)
		}
		if (len(got.Envelope) > 0) != !c.signed.IsZero() {
			t.Fatalf("envelope of %d bytes, signed at %v", len(got.Envelope), c.signed)
		}
		enc, err := encode(got)
		if err != nil {
			t.Fatalf("re-encoding an accepted announcement: %v", err)
		}
		again, err := decodeVerify(enc, signer, fuzzNow, DefaultTTL)
		if err != nil {
			t.Fatalf("re-encoded announcement refused: %v", err)
		}
		if !sameAnn(got, again.Announcement) || !again.signed.Equal(c.signed) {
			t.Fatalf("round trip: %+v became %+v", got, again)
		}
	})
}

// FuzzPublication: OpenPublication must not panic, must fail only with
// ErrPublication or ErrTooLarge, and what it opens must be valid metadata
// signed by its publisher.
func FuzzPublication(f *testing.F) {
	key, signer := fuzzKey(f)
	a := testAnn(1, signer)
	a.Time = fuzzNow
	env, err := SignPublication(key, a)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	a.TargetModules, a.Name = nil, ""
	if env, err = SignPublication(key, a); err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	a.Name, a.Version = "team-sql", MaxVersion
	if env, err = SignPublication(key, a); err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x80})

	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := OpenPublication(data)
		if err != nil {
			if !errors.Is(err, ErrPublication) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		if err := got.validateMetadata(); err != nil {
			t.Fatalf("opened an invalid publication: %v", err)
		}
		if got.Provider != "" || !bytes.Equal(got.Envelope, data) {
			t.Fatalf("opened %+v", got)
		}
		got.Provider = signer
		if _, err := checkPublication(got); err != nil {
			t.Fatalf("an opened publication does not match itself: %v", err)
		}
	})
}

// FuzzCatalog feeds arbitrary bytes, as a peer's catalog stream, to what
// a catalog pull runs on it (readCatalog): it must not panic, must fail
// only with ErrCatalog or on a truncated stream, must accept at most
// MaxCatalog entries and only valid, fresh ones that the peer provides,
// and what it accepts, served again, must be accepted again unchanged.
func FuzzCatalog(f *testing.F) {
	key, signer := fuzzKey(f)
	// The entries are checked, not added: no entry limit would refill.
	s := newService(signer, Options{MaxCatalog: 16, CatalogEntryLimit: RateLimit{Rate: -1}, Logger: testLogger()})
	now := func() time.Time { return fuzzNow }
	// serve renders entries as this node would serve them as signer's.
	serve := func(entries ...Announcement) []byte {
		var b bytes.Buffer
		if _, _, err := s.encodeCatalog(&b, entries, fuzzNow); err != nil {
			f.Fatal(err)
		}
		return b.Bytes()
	}
	frame := func(entries ...Announcement) []byte {
		cat := &pb.Catalog{}
		for _, a := range entries {
			cat.Entries = append(cat.Entries, toWire(a))
		}
		var b bytes.Buffer
		if _, err := pb.WriteFrame(&b, cat, nil); err != nil {
			f.Fatal(err)
		}
		return b.Bytes()
	}
	plain := testAnn(1, signer)
	bare := Announcement{CID: testCID(2), Metadata: expert.Metadata{Size: 1}, Publisher: signer}
	published := testAnn(3, signer)
	published.Time = fuzzNow.Add(-time.Hour)
	env, err := SignPublication(key, published)
	if err != nil {
		f.Fatal(err)
	}
	published.Envelope = env
	version := testAnn(5, signer)
	version.Time, version.Version = fuzzNow.Add(-time.Hour), 2
	if version.Envelope, err = SignPublication(key, version); err != nil {
		f.Fatal(err)
	}
	f.Add(serve(version, published))
	renamed := published
	renamed.Name = "not what was signed"
	fetched := testAnn(4, testPeers(f, 1)[0]) // another publisher's expert, unsigned
	real := serve(plain, bare, published, fetched)
	f.Add(real)
	f.Add(serve())
	f.Add(serve(published))
	f.Add(append(serve(plain), serve(published, bare)...)) // two frames
	f.Add(serve(renamed, plain))
	many := make([]Announcement, s.opts.MaxCatalog+1)
	for i := range many {
		many[i] = Announcement{CID: testCID(100 + i), Metadata: expert.Metadata{Size: 1}, Publisher: signer}
	}
	f.Add(serve(many...))
	stale, other := plain, plain
	stale.Provider, stale.Time = signer, fuzzNow.Add(-DefaultTTL-time.Minute)
	other.Provider, other.Time = testPeers(f, 1)[0], fuzzNow
	f.Add(frame(stale, other))
	f.Add([]byte{0x00})                                 // an empty frame
	f.Add(real[:len(real)/2])                           // cut short
	f.Add(bytes.Repeat([]byte{0xff}, 11))               // a length longer than any uvarint
	f.Add(binary.AppendUvarint(nil, maxCatalogFrame+1)) // an oversized frame

	f.Fuzz(func(t *testing.T, data []byte) {
		var got []checked
		accepted, rejected, err := s.readCatalog(bytes.NewReader(data), signer, now, func(c checked, at time.Time) {
			if !at.Equal(fuzzNow) {
				t.Fatalf("checked as of %v", at)
			}
			got = append(got, c)
		})
		if err != nil && !errors.Is(err, ErrCatalog) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("error neither ErrCatalog nor a truncation: %v", err)
		}
		if accepted != len(got) || accepted < 0 || rejected < 0 || accepted+rejected > s.opts.MaxCatalog {
			t.Fatalf("accepted %d (%d added), rejected %d, of at most %d", accepted, len(got), rejected, s.opts.MaxCatalog)
		}
		var again bytes.Buffer
		for _, c := range got {
			if c.Provider != signer {
				t.Fatalf("accepted an entry of provider %s", c.Provider)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("accepted an invalid entry: %v", err)
			}
			if err := checkFresh(c.Announcement, fuzzNow, s.opts.TTL); err != nil {
				t.Fatalf("accepted an entry out of time: %v", err)
			}
			if (len(c.Envelope) > 0) != !c.signed.IsZero() {
				t.Fatalf("envelope of %d bytes, signed at %v", len(c.Envelope), c.signed)
			}
			if _, err := pb.WriteFrame(&again, &pb.Catalog{Entries: []*pb.Announcement{toWire(c.Announcement)}}, nil); err != nil {
				t.Fatal(err)
			}
		}
		i := 0
		accepted, rejected, err = s.readCatalog(&again, signer, now, func(c checked, _ time.Time) {
			if !sameAnn(c.Announcement, got[i].Announcement) || !c.signed.Equal(got[i].signed) {
				t.Fatalf("entry %d served again: %+v became %+v", i, got[i], c)
			}
			i++
		})
		if err != nil || accepted != len(got) || rejected != 0 {
			t.Fatalf("%d accepted entries served again: %d accepted, %d rejected, err %v", len(got), accepted, rejected, err)
		}
	})
}
