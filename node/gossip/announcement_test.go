package gossip

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/encoding/protowire"
)

func testPeer(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRoundTrip(t *testing.T) {
	p := testPeer(t)
	a := testAnn(1, p)
	a.Publisher = testPeer(t)
	data, err := encode(a)
	if err != nil {
		t.Fatal(err)
	}
	b, err := decodeVerify(data, p, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !sameAnn(a, b.Announcement) {
		t.Fatalf("round trip: got %+v, want %+v", b, a)
	}
}

func sameAnn(a, b Announcement) bool {
	return a.CID == b.CID && a.Name == b.Name && a.PeftType == b.PeftType && a.BaseModel == b.BaseModel &&
		a.Rank == b.Rank && strings.Join(a.TargetModules, "\x00") == strings.Join(b.TargetModules, "\x00") &&
		len(a.TargetModules) == len(b.TargetModules) && a.Params == b.Params &&
		(a.Density == b.Density || math.IsNaN(a.Density) && math.IsNaN(b.Density)) &&
		a.Size == b.Size && a.Publisher == b.Publisher && a.Provider == b.Provider && a.Time.Equal(b.Time) &&
		bytes.Equal(a.Envelope, b.Envelope)
}

func TestCheck(t *testing.T) {
	p := testPeer(t)
	now := time.Now()
	ttl := 30 * time.Minute
	sha512, _ := mh.Sum([]byte("x"), mh.SHA2_512, -1)
	sha256, _ := mh.Sum([]byte("x"), mh.SHA2_256, -1)
	oversize := rawEncode(t, testAnn(1, p))
	oversize = protowire.AppendTag(oversize, 99, protowire.BytesType) // unknown field
	oversize = protowire.AppendBytes(oversize, make([]byte, MaxMessageSize))

	cases := []struct {
		name   string
		mod    func(*Announcement)
		data   []byte // instead of mod
		sender peer.ID
		want   error
		result pubsub.ValidationResult
	}{
		{name: "valid", mod: func(*Announcement) {}},
		{name: "no CID", mod: func(a *Announcement) { a.CID = cid.Undef }, want: ErrInvalid},
		{name: "CIDv0", mod: func(a *Announcement) { a.CID = cid.NewCidV0(sha256) }, want: ErrInvalid},
		{name: "cbor CID", mod: func(a *Announcement) { a.CID = cid.NewCidV1(cid.DagCBOR, sha256) }, want: ErrInvalid},
		{name: "sha512 CID", mod: func(a *Announcement) { a.CID = cid.NewCidV1(cid.Raw, sha512) }, want: ErrInvalid},
		{name: "garbage CID", data: func() []byte {
			w := toWire(testAnn(1, p))
			w.Cid = []byte("not a cid")
			return mustMarshal(t, w)
		}(), want: ErrInvalid},
		{name: "garbage", data: []byte{0xff, 0xff, 0xff}, want: ErrInvalid},
		{name: "no publisher", mod: func(a *Announcement) { a.Publisher = "" }, want: ErrInvalid},
		{name: "bad publisher", mod: func(a *Announcement) { a.Publisher = "xyz" }, want: ErrInvalid},
		{name: "no provider", mod: func(a *Announcement) { a.Provider = "" }, want: ErrInvalid},
		{name: "provider not sender", mod: func(*Announcement) {}, sender: testPeer(t), want: ErrNotProvider},
		{name: "long name", mod: func(a *Announcement) { a.Name = strings.Repeat("n", maxNameLen+1) }, want: ErrInvalid},
		{name: "control in name", mod: func(a *Announcement) { a.Name = "evil\x1b[2J" }, want: ErrInvalid},
		{name: "bidi override in name", mod: func(a *Announcement) { a.Name = "team-\u202elqs" }, want: ErrInvalid},
		{name: "zero-width in base model", mod: func(a *Announcement) { a.BaseModel = "gpt\u200b2" }, want: ErrInvalid},
		{name: "many modules", mod: func(a *Announcement) { a.TargetModules = make([]string, maxTargetModules+1) }, want: ErrInvalid},
		{name: "empty module", mod: func(a *Announcement) { a.TargetModules = []string{""} }, want: ErrInvalid},
		{name: "negative rank", mod: func(a *Announcement) { a.Rank = -1 }, want: ErrInvalid},
		{name: "huge rank", mod: func(a *Announcement) { a.Rank = maxRank + 1 }, want: ErrInvalid},
		{name: "NaN density", mod: func(a *Announcement) { a.Density = math.NaN() }, want: ErrInvalid},
		{name: "density > 1", mod: func(a *Announcement) { a.Density = 1.5 }, want: ErrInvalid},
		{name: "no size", mod: func(a *Announcement) { a.Size = 0 }, want: ErrInvalid},
		{name: "no time", mod: func(a *Announcement) { a.Time = time.Time{} }, want: ErrInvalid},
		{name: "huge size", data: func() []byte {
			w := toWire(testAnn(1, p))
			w.Size = math.MaxUint64
			return mustMarshal(t, w)
		}(), want: ErrInvalid},
		{name: "slightly ahead", mod: func(a *Announcement) { a.Time = now.Add(MaxClockSkew - time.Minute) }},
		{name: "far future", mod: func(a *Announcement) { a.Time = now.Add(MaxClockSkew + time.Minute) }, want: ErrFuture},
		{name: "stale", mod: func(a *Announcement) { a.Time = now.Add(-ttl - time.Minute) }, want: ErrStale,
			result: pubsub.ValidationIgnore},
		{name: "oversize", data: oversize, want: ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.data
			if data == nil {
				a := testAnn(1, p)
				tc.mod(&a)
				data = rawEncode(t, a)
			}
			sender := p
			if tc.sender != "" {
				sender = tc.sender
			}
			_, err := decodeVerify(data, sender, now, ttl)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			want := tc.result
			if tc.want != nil && want == pubsub.ValidationAccept {
				want = pubsub.ValidationReject
			}
			if got := verdict(err); got != want {
				t.Fatalf("verdict %v, want %v", got, want)
			}
		})
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	a := testAnn(1, testPeer(t))
	a.Name = strings.Repeat("x", 200)
	a.TargetModules = make([]string, maxTargetModules)
	for i := range a.TargetModules {
		a.TargetModules[i] = strings.Repeat("m", maxTargetModuleLen)
	}
	if _, err := encode(a); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	a = testAnn(1, testPeer(t))
	a.Publisher = ""
	if _, err := encode(a); !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
}
