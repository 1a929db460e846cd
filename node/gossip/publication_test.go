package gossip

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/expert"
	pb "github.com/expertd/expertd/proto"
)

func testKey(t testing.TB) (crypto.PrivKey, peer.ID) {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return sk, id
}

// sign returns a with its Publisher set to key's peer and an Envelope
// holding its publication, signed at a.Time.
func sign(t testing.TB, key crypto.PrivKey, a Announcement) Announcement {
	t.Helper()
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	a.Publisher = id
	if a.Envelope, err = SignPublication(key, a); err != nil {
		t.Fatal(err)
	}
	return a
}

// rawRecord is a record of the publication type holding arbitrary bytes,
// optionally under another domain: what a malicious signer can make.
type rawRecord struct {
	data   []byte
	domain string
}

func (r *rawRecord) Domain() string {
	if r.domain != "" {
		return r.domain
	}
	return PublicationDomain
}
func (*rawRecord) Codec() []byte                    { return publicationCodec }
func (r *rawRecord) MarshalRecord() ([]byte, error) { return r.data, nil }
func (*rawRecord) UnmarshalRecord([]byte) error     { return errors.New("write only") }

func seal(t testing.TB, rec record.Record, key crypto.PrivKey) []byte {
	t.Helper()
	env, err := record.Seal(rec, key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestPublicationRoundTrip(t *testing.T) {
	key, pub := testKey(t)
	a := testAnn(1, testPeer(t)) // provided by someone else
	a.Publisher = pub
	a.Time = time.UnixMilli(1_700_000_000_123)
	a.Outboard = bytes.Repeat([]byte{7}, 32)
	env, err := SignPublication(key, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(env) > MaxEnvelopeSize {
		t.Fatalf("envelope of %d bytes", len(env))
	}
	got, err := OpenPublication(env)
	if err != nil {
		t.Fatal(err)
	}
	if !sameMetadata(got, a) || !got.Time.Equal(a.Time) || got.Provider != "" || !bytes.Equal(got.Envelope, env) || !bytes.Equal(got.Outboard, a.Outboard) {
		t.Fatalf("opened %+v, signed %+v", got, a)
	}
	// The announcement to make of it: this node provides it, now.
	got.Provider, got.Time = a.Provider, time.Now()
	if signed, err := checkPublication(got); err != nil || !signed.Equal(a.Time) {
		t.Fatalf("checkPublication: %v, signed at %v", err, signed)
	}

	// Unknown metadata stays unknown; a zero time means now.
	min := Announcement{CID: testCID(2), Metadata: expert.Metadata{Size: 1}, Publisher: pub}
	before := time.Now().Add(-time.Millisecond)
	env, err = SignPublication(key, min)
	if err != nil {
		t.Fatal(err)
	}
	got, err = OpenPublication(env)
	if err != nil {
		t.Fatal(err)
	}
	if !sameMetadata(got, min) || got.TargetModules != nil || got.Time.Before(before) || got.Time.After(time.Now()) {
		t.Fatalf("opened %+v", got)
	}
}

func TestSignPublicationErrors(t *testing.T) {
	key, pub := testKey(t)
	a := testAnn(1, pub)
	if _, err := SignPublication(key, func() Announcement { b := a; b.Publisher = testPeer(t); return b }()); !errors.Is(err, ErrPublication) {
		t.Errorf("publisher not the signer: %v", err)
	}
	if _, err := SignPublication(nil, a); !errors.Is(err, ErrPublication) {
		t.Errorf("no key: %v", err)
	}
	if _, err := SignPublication(key, func() Announcement { b := a; b.CID = cid.Undef; return b }()); !errors.Is(err, ErrInvalid) {
		t.Errorf("no CID: %v", err)
	}
	if _, err := SignPublication(key, func() Announcement { b := a; b.Outboard = make([]byte, 31); return b }()); !errors.Is(err, ErrInvalid) {
		t.Errorf("outboard hash of 31 bytes: %v", err)
	}
	big := a
	big.Outboard = make([]byte, 32)
	big.TargetModules = make([]string, 100)
	for i := range big.TargetModules {
		big.TargetModules[i] = strings.Repeat("m", maxTargetModuleLen)
	}
	if _, err := SignPublication(key, big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize: %v", err)
	}
	// The largest publication that signs fits in an announcement.
	big.Name, big.BaseModel = strings.Repeat("n", maxNameLen), strings.Repeat("b", maxBaseModelLen)
	for {
		env, err := SignPublication(key, big)
		if errors.Is(err, ErrTooLarge) {
			big.TargetModules = big.TargetModules[:len(big.TargetModules)-1]
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		big.Envelope = env
		break
	}
	if _, err := encode(big); err != nil {
		t.Fatalf("announcement of the largest publication (%d modules): %v", len(big.TargetModules), err)
	}
}

func TestOpenPublicationErrors(t *testing.T) {
	key, pub := testKey(t)
	other, _ := testKey(t)
	a := testAnn(1, pub)
	env, err := SignPublication(key, a)
	if err != nil {
		t.Fatal(err)
	}
	badCID := &pb.Publication{Cid: []byte("garbage"), Size: 1, Publisher: []byte(pub), TimeUnixMs: 1}
	noTime := &pb.Publication{Cid: testCID(1).Bytes(), Size: 1, Publisher: []byte(pub)}

	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrPublication},
		{"garbage", []byte("not an envelope"), ErrPublication},
		{"oversize", append(bytes.Clone(env), make([]byte, MaxEnvelopeSize)...), ErrTooLarge},
		{"signed by another key", seal(t, &publication{a: a}, other), ErrPublication},
		{"another domain", seal(t, &rawRecord{data: mustMarshal(t, &pb.Publication{
			Cid: a.CID.Bytes(), Size: 1, Publisher: []byte(pub), TimeUnixMs: 1,
		}), domain: "libp2p-peer-record"}, key), ErrPublication},
		{"bad CID", seal(t, &rawRecord{data: mustMarshal(t, badCID)}, key), ErrPublication},
		{"no time", seal(t, &rawRecord{data: mustMarshal(t, noTime)}, key), ErrPublication},
		{"payload not protobuf", seal(t, &rawRecord{data: []byte{0xff, 0xff}}, key), ErrPublication},
		{"peer record", func() []byte {
			rec := peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: pub})
			return seal(t, rec, key)
		}(), ErrPublication},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := OpenPublication(tc.data); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}

	// Tampering with any bit of the envelope breaks it.
	for i := range len(env) * 8 {
		bad := bytes.Clone(env)
		bad[i/8] ^= 1 << (i % 8)
		if got, err := OpenPublication(bad); err == nil {
			t.Fatalf("bit %d flipped: opened %+v", i, got)
		} else if !errors.Is(err, ErrPublication) {
			t.Fatalf("bit %d flipped: error without the sentinel: %v", i, err)
		}
	}
}

// TestCheckSigned: an announcement with an envelope is accepted only if it
// says what the publication says; who provides it does not matter.
func TestCheckSigned(t *testing.T) {
	key, _ := testKey(t)
	_, other := testKey(t)
	provider := testPeer(t)
	now := time.Now()
	base := testAnn(1, provider)
	base.Time = time.UnixMilli(now.Add(-time.Hour).UnixMilli()) // signed an hour ago
	base = sign(t, key, base)
	signedAt := base.Time
	base.Time = time.UnixMilli(now.UnixMilli())

	for _, tc := range []struct {
		name string
		mod  func(*Announcement)
		want error
	}{
		{"valid", func(*Announcement) {}, nil},
		{"no envelope", func(a *Announcement) { a.Envelope = nil }, nil},
		{"name", func(a *Announcement) { a.Name = "renamed" }, ErrPublication},
		{"peft type", func(a *Announcement) { a.PeftType = "ia3" }, ErrPublication},
		{"base model", func(a *Announcement) { a.BaseModel = "other" }, ErrPublication},
		{"rank", func(a *Announcement) { a.Rank++ }, ErrPublication},
		{"target modules", func(a *Announcement) { a.TargetModules = a.TargetModules[:1] }, ErrPublication},
		{"no target modules", func(a *Announcement) { a.TargetModules = nil }, ErrPublication},
		{"params", func(a *Announcement) { a.Params++ }, ErrPublication},
		{"density", func(a *Announcement) { a.Density = 0.2 }, ErrPublication},
		{"size", func(a *Announcement) { a.Size++ }, ErrPublication},
		{"publisher", func(a *Announcement) { a.Publisher = other }, ErrPublication},
		{"another expert's", func(a *Announcement) { a.CID = testCID(2) }, ErrPublication},
		{"garbled", func(a *Announcement) { a.Envelope = a.Envelope[:len(a.Envelope)-1] }, ErrPublication},
		{"oversize", func(a *Announcement) { a.Envelope = make([]byte, MaxEnvelopeSize+1) }, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := base.clone()
			tc.mod(&a)
			c, err := decodeVerify(rawEncode(t, a), provider, now, DefaultTTL)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil {
				if verdict(err) != pubsub.ValidationReject {
					t.Fatalf("verdict %v", verdict(err))
				}
				return
			}
			if want := len(a.Envelope) > 0; !c.signed.IsZero() != want || want && !c.signed.Equal(signedAt) {
				t.Fatalf("signed at %v", c.signed)
			}
		})
	}
}

// TestValidatorChecksPublications: a rogue node publishes raw
// announcements; the victim rejects those whose envelope is forged or
// differs from them, and keeps signed metadata over the rogue's claims.
func TestValidatorChecksPublications(t *testing.T) {
	victim := newNode(t, quiet)
	rh := newHost(t)
	rps := newPubSub(t, rh)
	rtopic, err := rps.Join(Topic)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, rh, victim.h)
	waitTopicPeers(t, rps, victim.h.ID())
	rogue := rh.ID()
	rogueKey := rh.Peerstore().PrivKey(rogue)
	publish := func(a Announcement) {
		t.Helper()
		if err := rtopic.Publish(context.Background(), rawEncode(t, a)); err != nil {
			t.Fatal(err)
		}
	}
	stats := func() Stats { return victim.s.Stats() }
	key, publisher := testKey(t) // an honest publisher whose expert the rogue holds

	valid := sign(t, key, testAnn(1, rogue))
	publish(valid)
	testutil.Eventually(t, 10*time.Second, "signed announcement accepted", func() bool { return victim.s.View().Has(valid.CID) })
	e, ok := victim.s.View().Get(valid.CID)
	if !ok || !e.Signed || e.Publisher != publisher || !bytes.Equal(e.Envelope, valid.Envelope) {
		t.Fatalf("entry %+v", e)
	}

	// Rejected: metadata other than signed; a publication the rogue
	// signed itself in the publisher's name; one of another expert.
	renamed := sign(t, key, testAnn(2, rogue))
	renamed.Name = "rogue's name"
	publish(renamed)
	forged := testAnn(3, rogue)
	forged.Publisher = publisher
	forged.Envelope = seal(t, &publication{a: forged}, rogueKey)
	publish(forged)
	moved := testAnn(4, rogue)
	moved.Publisher, moved.Envelope = publisher, valid.Envelope
	publish(moved)
	testutil.Eventually(t, 10*time.Second, "three rejections", func() bool { return stats().Rejected == 3 })
	for i := 2; i <= 4; i++ {
		if _, ok := victim.s.View().Get(testCID(i)); ok {
			t.Errorf("rejected expert %d is in the view", i)
		}
	}

	// Accepted, as an unsigned claim, but it does not replace the
	// signed metadata.
	claim := testAnn(1, rogue)
	claim.Name, claim.Publisher = "rogue's name", rogue
	claim.Time = valid.Time.Add(time.Millisecond)
	publish(claim)
	testutil.Eventually(t, 10*time.Second, "unsigned claim accepted", func() bool { return stats().Accepted == 2 })
	e, _ = victim.s.View().Get(valid.CID)
	if !e.Signed || e.Name != valid.Name || e.Publisher != publisher {
		t.Fatalf("an unsigned claim replaced signed metadata: %+v", e)
	}
	if st := stats(); st.Rejected != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCatalogCarriesPublications: a catalog entry keeps its envelope, and
// one whose envelope differs from it is rejected.
func TestCatalogCarriesPublications(t *testing.T) {
	a := newNode(t, quiet)
	key := a.h.Peerstore().PrivKey(a.h.ID())
	own := sign(t, key, testAnn(1, a.h.ID()))
	fetched := sign(t, mustKey(t), testAnn(2, a.h.ID())) // published elsewhere
	unsigned := testAnn(3, a.h.ID())
	bad := sign(t, key, testAnn(4, a.h.ID()))
	bad.Rank = 1
	for _, x := range []*Announcement{&own, &fetched, &unsigned, &bad} {
		x.Provider, x.Time = "", time.Time{} // the service stamps them
	}
	a.cat.add(own, fetched, unsigned, bad)

	late := newNode(t, quiet)
	connect(t, late.h, a.h)
	testutil.Eventually(t, 5*time.Second, "catalog pulled", func() bool { return late.s.Stats().CatalogPulls == 1 })
	if st := late.s.Stats(); st.CatalogAccepted != 3 || st.CatalogRejected != 1 {
		t.Fatalf("stats %+v", st)
	}
	for _, want := range []Announcement{own, fetched, unsigned} {
		e, ok := late.s.View().Get(want.CID)
		if !ok || e.Signed != (want.Envelope != nil) || !bytes.Equal(e.Envelope, want.Envelope) ||
			!sameMetadata(e.Announcement, want) || e.Provider != a.h.ID() {
			t.Errorf("entry %+v, want %+v", e, want)
		}
	}
	if _, ok := late.s.View().Get(bad.CID); ok {
		t.Error("an entry that differs from its publication is in the view")
	}

	// Announce refuses it outright.
	if err := a.s.Announce(context.Background(), bad); !errors.Is(err, ErrPublication) {
		t.Fatalf("Announce of a mismatched publication: %v", err)
	}
}

func mustKey(t testing.TB) crypto.PrivKey {
	k, _ := testKey(t)
	return k
}

// TestCatalogEnvelopeOnTheWire: what a node serves is what it was given.
func TestCatalogEnvelopeOnTheWire(t *testing.T) {
	a := newNode(t, quiet)
	own := sign(t, a.h.Peerstore().PrivKey(a.h.ID()), testAnn(1, a.h.ID()))
	a.cat.add(own)
	h := newHost(t)
	connect(t, h, a.h)
	entries, err := pullCatalog(t, h, a.h.ID())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !bytes.Equal(entries[0].GetEnvelope(), own.Envelope) {
		t.Fatalf("served %v", entries)
	}
}
