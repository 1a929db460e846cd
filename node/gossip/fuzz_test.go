package gossip

import (
	"bytes"
	"errors"
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
	_, pub, err := crypto.GenerateEd25519Key(bytes.NewReader(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// fuzzNow is the fixed receive time of the fuzz target.
var fuzzNow = time.UnixMilli(1_750_000_000_000)

// FuzzAnnouncement runs what the topic validator runs on every message
// (decode, field checks, provider, time window): it must not panic, must
// fail only with a sentinel, and what it accepts must re-encode to itself.
func FuzzAnnouncement(f *testing.F) {
	signer := fuzzSigner(f)
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

	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeVerify(data, signer, fuzzNow, DefaultTTL)
		if err != nil {
			if verdict(err) == pubsub.ValidationAccept {
				t.Fatalf("error %v maps to Accept", err)
			}
			for _, s := range []error{ErrInvalid, ErrTooLarge, ErrFuture, ErrStale, ErrNotProvider} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error without a sentinel: %v", err)
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("accepted an invalid announcement: %v", err)
		}
		enc, err := encode(got)
		if err != nil {
			t.Fatalf("re-encoding an accepted announcement: %v", err)
		}
		again, err := decodeVerify(enc, signer, fuzzNow, DefaultTTL)
		if err != nil {
			t.Fatalf("re-encoded announcement refused: %v", err)
		}
		if !sameAnn(got, again) {
			t.Fatalf("round trip: %+v became %+v", got, again)
		}
	})
}
