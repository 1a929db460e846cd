package gossip

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	pb "github.com/expertd/expertd/proto"
)

// TestPublicationMerge: a publication carries its expert's merge
// provenance under the publisher's signature; an announcement does not
// carry it, and still matches its publication.
func TestPublicationMerge(t *testing.T) {
	key, pub := testKey(t)
	a := testAnn(1, testPeer(t))
	a.Publisher, a.Time = pub, time.UnixMilli(1_700_000_000_000)
	a.Merge = &Merge{Method: "ties", Parents: []cid.Cid{testCID(2), cid.Undef, testCID(3)}}
	env, err := SignPublication(key, a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenPublication(env)
	if err != nil {
		t.Fatal(err)
	}
	if got.Merge == nil || got.Merge.Method != "ties" || !slices.Equal(got.Merge.Parents, a.Merge.Parents) {
		t.Fatalf("opened merge %+v, signed %+v", got.Merge, a.Merge)
	}
	// On the wire an announcement has no merge; its envelope has.
	onWire := got
	onWire.Merge, onWire.Provider, onWire.Time = nil, a.Provider, time.Now()
	if _, err := checkPublication(onWire); err != nil {
		t.Fatalf("announcement of a merged expert: %v", err)
	}
	// Without a merge, none comes back.
	a.Merge = nil
	if env, err = SignPublication(key, a); err != nil {
		t.Fatal(err)
	}
	if got, err = OpenPublication(env); err != nil || got.Merge != nil {
		t.Fatalf("plain publication: merge %+v, %v", got.Merge, err)
	}
}

// TestPublicationMergeRefused: a malformed merge is neither signed nor,
// when a hostile signer seals one anyway, opened.
func TestPublicationMergeRefused(t *testing.T) {
	key, pub := testKey(t)
	v0, err := cid.Decode("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n") // CIDv0: not what the fetch protocol serves
	if err != nil {
		t.Fatal(err)
	}
	many := make([]cid.Cid, MaxMergeParents+1)
	for i := range many {
		many[i] = testCID(i)
	}
	for _, c := range []struct {
		what string
		m    Merge
	}{
		{"no method", Merge{Parents: []cid.Cid{testCID(1), testCID(2)}}},
		{"method with a bidi override", Merge{Method: "ta\u202e", Parents: []cid.Cid{testCID(1), testCID(2)}}},
		{"long method", Merge{Method: strings.Repeat("t", 17), Parents: []cid.Cid{testCID(1), testCID(2)}}},
		{"one parent", Merge{Method: "ta", Parents: []cid.Cid{testCID(1)}}},
		{"65 parents", Merge{Method: "ta", Parents: many}},
		{"a CIDv0 parent", Merge{Method: "ta", Parents: []cid.Cid{testCID(1), v0}}},
	} {
		a := testAnn(1, pub)
		a.Merge = &c.m
		if _, err := SignPublication(key, a); !errors.Is(err, ErrInvalid) {
			t.Errorf("sign with %s: %v, want ErrInvalid", c.what, err)
		}
		// The same, sealed by a signer that skips the checks.
		w := &pb.Publication{Cid: a.CID.Bytes(), Size: 1, Publisher: []byte(pub), TimeUnixMs: 1, Merge: c.m.toWire()}
		if _, err := OpenPublication(seal(t, &rawRecord{data: mustMarshal(t, w)}, key)); !errors.Is(err, ErrPublication) {
			t.Errorf("open with %s: %v, want ErrPublication", c.what, err)
		}
	}
	w := &pb.Publication{Cid: testCID(1).Bytes(), Size: 1, Publisher: []byte(pub), TimeUnixMs: 1,
		Merge: &pb.MergeProvenance{Method: "ta", Parents: [][]byte{testCID(2).Bytes(), {0x01, 0x02}}}}
	if _, err := OpenPublication(seal(t, &rawRecord{data: mustMarshal(t, w)}, key)); !errors.Is(err, ErrPublication) {
		t.Errorf("open with a parent that is no CID: %v, want ErrPublication", err)
	}
}
