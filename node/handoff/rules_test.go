package handoff

import (
	"errors"
	"testing"

	gocid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

func testCID(t *testing.T, data string) gocid.Cid {
	t.Helper()
	h, err := mh.Sum([]byte(data), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return gocid.NewCidV1(gocid.DagProtobuf, h)
}

func testPeer(t *testing.T) peer.ID {
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

func TestParseRules(t *testing.T) {
	c := testCID(t, "x")
	p := testPeer(t)
	rules, err := ParseRules([]string{
		"cid=" + gocid.NewCidV0(c.Hash()).String(), // v0 is kept as its v1
		" name = python-* ",
		"base_model=Meta-Llama/*",
		"publisher=" + p.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{FieldCID, c.String()},
		{FieldName, "python-*"},
		{FieldBaseModel, "meta-llama/*"},
		{FieldPublisher, p.String()},
	}
	if len(rules) != len(want) {
		t.Fatalf("rules %v", rules)
	}
	for i := range want {
		if rules[i] != want[i] {
			t.Errorf("rule %d = %v, want %v", i, rules[i], want[i])
		}
	}
	if r, err := ParseRules(nil); err != nil || len(r) != 0 {
		t.Errorf("ParseRules(nil) = %v, %v", r, err)
	}
	for _, bad := range []string{"", "name", "name=", "=x", "tag=x", "cid=nope", "publisher=nope", "name=[", "base_model=a\\"} {
		if r, err := ParseRules([]string{bad}); !errors.Is(err, ErrRule) {
			t.Errorf("ParseRules(%q) = %v, %v; want ErrRule", bad, r, err)
		}
	}
}

func TestMatch(t *testing.T) {
	c := testCID(t, "x")
	other := testCID(t, "y")
	p, q := testPeer(t), testPeer(t)
	v0 := gocid.NewCidV0(c.Hash()).String() // base58btc "Qm..."
	rules, err := ParseRules([]string{"cid=" + v0, "name=python-*", "base_model=meta-llama/*", "publisher=" + p.String()})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		c    Candidate
		want bool
	}{
		{Candidate{CID: c.String()}, true},
		{Candidate{CID: v0}, true},
		{Candidate{CID: other.String()}, false},
		{Candidate{CID: other.String(), Name: "python-lora"}, true},
		{Candidate{Name: "python"}, false},
		{Candidate{Name: "python-a/b"}, false}, // '*' does not cross '/'
		{Candidate{BaseModel: "Meta-Llama/Llama-3.2-1B"}, true},
		{Candidate{BaseModel: "meta-llama"}, false},
		{Candidate{BaseModel: "gpt2"}, false},
		{Candidate{Publisher: p.String()}, true},
		{Candidate{Publisher: q.String()}, false},
		{Candidate{Publisher: "garbage"}, false},
		{Candidate{}, false},
	} {
		if got := Match(rules, m.c); got != m.want {
			t.Errorf("Match(%+v) = %v, want %v", m.c, got, m.want)
		}
	}
	if Match(nil, Candidate{CID: c.String(), Name: "python-x"}) {
		t.Error("no rules matched something")
	}
	// Rules written by hand are compared as written; garbage never matches garbage.
	if Match([]Rule{{FieldCID, "junk"}}, Candidate{CID: "other-junk"}) {
		t.Error("two non-CIDs matched")
	}
	if !Match([]Rule{{FieldName, "*"}}, Candidate{Name: "anything"}) {
		t.Error("name=* did not match")
	}
}
