package store

import (
	"bytes"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/expert"
)

// TestEnvelopeKept: a publication envelope is stored with the expert as
// given, survives a reopen, is filled in when an expert indexed without
// one is added or completed again with one, and never replaced by
// another; Get hands out copies.
func TestEnvelopeKept(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	env := []byte("\x0a\x24signed envelope bytes\x00\xff")
	signed := add(t, s, testutil.RandomBytes(4000, 30), Meta{Metadata: expert.Metadata{Name: "signed"}, Envelope: env})
	unsigned := add(t, s, testutil.RandomBytes(4000, 31), Meta{Metadata: expert.Metadata{Name: "unsigned"}})

	if m, _ := s.Get(unsigned); m.Envelope != nil {
		t.Fatalf("unsigned expert has an envelope: %q", m.Envelope)
	}
	m, _ := s.Get(signed)
	if !bytes.Equal(m.Envelope, env) {
		t.Fatalf("envelope %q, want %q", m.Envelope, env)
	}
	m.Envelope[0] ^= 1
	if m, _ := s.Get(signed); !bytes.Equal(m.Envelope, env) {
		t.Fatal("Get returned the store's own envelope")
	}

	// Added later (say, once the publisher signed what the store filled
	// in from the container) and not replaced by another.
	later := []byte("a later envelope")
	add(t, s, testutil.RandomBytes(4000, 31), Meta{Envelope: later})
	add(t, s, testutil.RandomBytes(4000, 30), Meta{Envelope: []byte("another")})
	if err := s.Complete(t.Context(), unsigned, Meta{Envelope: []byte("another")}); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Get(unsigned); !bytes.Equal(m.Envelope, later) || m.Name != "unsigned" {
		t.Fatalf("after adding an envelope: %+v", m)
	}
	if m, _ := s.Get(signed); !bytes.Equal(m.Envelope, env) {
		t.Fatalf("envelope replaced: %q", m.Envelope)
	}

	list := s.List()
	s.Close()
	s = e.open()
	for _, want := range list {
		root, err := decodeRoot(want.CID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(root)
		if err != nil {
			t.Fatal(err)
		}
		sameMeta(t, got, want)
	}
	// The entry file carries it, base64, and omits it when empty.
	raw, err := os.ReadFile(entryFile(e, signed))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(`"envelope": "CiRzaWduZWQgZW52ZWxvcGUgYnl0ZXMA/w=="`)) {
		t.Fatalf("entry file:\n%s", raw)
	}
	m, _ = s.Get(signed)
	m.Envelope = nil
	if b, _ := encodeMeta(m); bytes.Contains(b, []byte("envelope")) {
		t.Fatalf("an entry without an envelope names one:\n%s", b)
	}
}

// TestMetaFileFormat pins the index entry file: stores written by earlier
// versions are read by later ones, so its field names and their order
// change only on purpose.
func TestMetaFileFormat(t *testing.T) {
	added := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := Meta{CID: "bafkfull", Metadata: expert.Metadata{Name: "python", PeftType: "LORA", BaseModel: "gpt2", Rank: 16, TargetModules: []string{"c_attn"}, Params: 589824, Density: 0.1, Size: 123456}, SourceBytes: 2359296, Publisher: "12D3KooWpub", Added: added, LastUsed: added.Add(time.Hour), Pinned: true, Requested: true, Envelope: []byte{1, 2, 3}}
	const want = `{
  "cid": "bafkfull",
  "name": "python",
  "peft_type": "LORA",
  "base_model": "gpt2",
  "rank": 16,
  "target_modules": [
    "c_attn"
  ],
  "params": 589824,
  "density": 0.1,
  "size": 123456,
  "source_bytes": 2359296,
  "publisher": "12D3KooWpub",
  "added": "2026-01-02T03:04:05Z",
  "last_used": "2026-01-02T04:04:05Z",
  "pinned": true,
  "requested": true,
  "envelope": "AQID"
}
`
	b, err := encodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Errorf("entry file:\n%s\nwant\n%s", b, want)
	}
	root := rawCID([]byte("entry"))
	m.CID = root.String()
	b, _ = encodeMeta(m)
	back, err := decodeMeta(root, b)
	if err != nil || !reflect.DeepEqual(back, m) {
		t.Errorf("read back %+v (%v), want %+v", back, err, m)
	}
	const zero = "{\n  \"cid\": \"bafkzero\",\n  \"size\": 0,\n  \"added\": \"0001-01-01T00:00:00Z\",\n  \"last_used\": \"0001-01-01T00:00:00Z\",\n  \"pinned\": false\n}\n"
	if b, _ := encodeMeta(Meta{CID: "bafkzero"}); string(b) != zero {
		t.Errorf("entry file of a bare entry:\n%s\nwant\n%s", b, zero)
	}
}
