package gossip

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	pb "github.com/expertd/expertd/proto"
)

// fuzzSigner is a fixed peer ID, so that corpus entries naming it as
// provider stay valid.
func fuzzSigner(t testing.TB) peer.ID {
	_, id := fuzzKey(t)
	return id
}

// fuzzKey is the fixed key of fuzzSigner, so that corpus entries holding a
// publication it signed (Ed25519 signatures are deterministic) stay valid.
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
	min := Announcement{CID: testCID(2), Size: 1, Publisher: signer, Provider: signer, Time: fuzzNow.Add(-time.Minute)}
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
