package gossip

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// version returns announcement i of the expert name, version v of key's
// line, provided by prov, signed now.
func version(t testing.TB, key crypto.PrivKey, i int, name string, v uint64, prov peer.ID) Announcement {
	t.Helper()
	a := testAnn(i, prov)
	a.Name, a.Version = name, v
	return sign(t, key, a)
}

func TestVersionSigned(t *testing.T) {
	key, _ := testKey(t)
	prov := testPeer(t)
	a := version(t, key, 1, "team-sql", 7, prov)
	p, err := OpenPublication(a.Envelope)
	if err != nil || p.Version != 7 {
		t.Fatalf("OpenPublication: version %d, %v", p.Version, err)
	}
	if _, err := checkPublication(a); err != nil {
		t.Fatal(err)
	}
	// The announcement must say the envelope's version.
	b := a
	b.Version = 8
	if _, err := checkPublication(b); !errors.Is(err, ErrPublication) {
		t.Errorf("an announcement of version 8 carrying version 7's publication: %v", err)
	}
	// No version without a publication, none out of range.
	c := testAnn(2, prov)
	c.Version = 1
	if err := c.Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("an unsigned announcement with a version: %v", err)
	}
	d := testAnn(3, prov)
	d.Publisher, d.Version = a.Publisher, MaxVersion+1
	if _, err := SignPublication(key, d); !errors.Is(err, ErrInvalid) {
		t.Errorf("version %d signed: %v", d.Version, err)
	}
	if _, err := decode(rawEncode(t, c)); !errors.Is(err, ErrInvalid) {
		t.Errorf("decoding an unsigned announcement with a version: %v", err)
	}
}

func TestLineLog(t *testing.T) {
	key, pub := testKey(t)
	prov := testPeer(t)
	l := newLineLog(2, map[peer.ID]bool{pub: true})
	now := time.Now()
	v1 := version(t, key, 1, "team-sql", 1, prov)
	v2 := version(t, key, 2, "team-sql", 2, prov)
	if _, err := l.check(v2, now); err != nil {
		t.Fatal(err)
	}
	l.put(v2, now)
	l.put(v1, now) // older: no change
	if got, _ := l.latest(LineOf(v1)); got != 2 {
		t.Fatalf("latest %d, want 2", got)
	}
	for _, c := range []struct {
		a    Announcement
		want error
	}{
		{v2, nil},
		{v1, ErrSuperseded},
		{version(t, key, 3, "team-sql", 2, prov), ErrVersionConflict},
		{version(t, key, 4, "Team-SQL", 3, prov), ErrNameTaken},
		{version(t, key, 5, "TEAM-sql", 3, prov), ErrNameTaken},
		{version(t, key, 6, "team-sql", 3, prov), nil},
		{version(t, key, 7, "team-sql2", 1, prov), nil}, // another line
		{testAnn(8, prov), nil},                         // no line
	} {
		if _, err := l.check(c.a, now); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%q version %d (%s): %v, want %v", c.a.Name, c.a.Version, c.a.CID, err, c.want)
		}
	}
	if recent, _ := l.check(v1, now.Add(30*time.Second)); !recent {
		t.Error("30 s after version 2, version 1 may be gossip's reordering")
	}
	if recent, _ := l.check(v1, now.Add(2*time.Minute)); recent {
		t.Error("2 min after version 2, version 1 is a replay")
	}

	// Full: a preferred publisher's new line takes another's place; no one
	// else's is recorded.
	okey, _ := testKey(t)
	l.put(version(t, okey, 9, "other", 1, prov), now)
	if l.len() != 2 {
		t.Fatalf("%d lines", l.len())
	}
	stranger := version(t, okey, 10, "stranger", 1, prov)
	l.put(stranger, now)
	if _, ok := l.latest(LineOf(stranger)); ok {
		t.Error("a stranger's line was recorded in a full log")
	}
	mine := version(t, key, 11, "mine", 1, prov)
	l.put(mine, now)
	if _, ok := l.latest(LineOf(mine)); !ok || l.len() != 2 {
		t.Errorf("a preferred line was not recorded in a full log (%d lines)", l.len())
	}
	if _, ok := l.latest(LineOf(v2)); !ok {
		t.Error("the preferred publisher's other line was evicted")
	}
}

// TestViewKeepsHeads: the view holds the latest version of each line and
// what Keep keeps; an older version is not added.
func TestViewKeepsHeads(t *testing.T) {
	kept := testCID(1)
	v, clk := newBoundedView(ViewOptions{TTL: time.Hour, Keep: func(e Entry) bool { return e.CID == kept }})
	key, pub := testKey(t)
	p1, p2 := testPeer(t), testPeer(t)
	at := func(a Announcement) Announcement { a.Time = clk.now(); return a }
	v1 := at(version(t, key, 1, "team-sql", 1, p1))
	v2 := at(version(t, key, 2, "team-sql", 2, p1))
	v3 := at(version(t, key, 3, "team-sql", 3, p2))
	other := at(version(t, key, 9, "team-py", 1, p1))
	for _, a := range []Announcement{v1, other, v2} {
		v.Add(a)
	}
	if h, ok := v.Head(LineOf(v1)); !ok || h.CID != v2.CID || h.Version != 2 {
		t.Fatalf("head %+v, want version 2", h)
	}
	if !v.Has(v1.CID) {
		t.Error("a kept version was dropped")
	}
	v.Add(v3)
	if v.Has(v2.CID) {
		t.Error("the superseded version 2 is still in the view")
	}
	clk.add(time.Second)
	if v.Add(at(version(t, key, 2, "team-sql", 2, p2))) || v.Has(v2.CID) {
		t.Error("version 2 came back")
	}
	if v.Add(at(version(t, key, 4, "team-sql", 3, p2))) || v.Has(testCID(4)) {
		t.Error("another expert under version 3 was added")
	}
	v.Add(at(v1)) // kept: refreshed
	if e, _ := v.Get(v1.CID); e.Providers[0].LastSeen != clk.now() {
		t.Errorf("the kept version was not refreshed: %+v", e.Providers)
	}
	heads := v.Heads("TEAM-SQL")
	if len(heads) != 1 || heads[0].CID != v3.CID || heads[0].Publisher != pub {
		t.Fatalf("heads %+v, want version 3", heads)
	}
	if c := v.Counts(); c.Superseded != 3 || c.Experts != 3 {
		t.Errorf("counts %+v: want 3 superseded, 3 experts (versions 1 and 3, team-py)", c)
	}

	// Another publisher's line of the same name is a line of its own.
	okey, opub := testKey(t)
	v.Add(at(version(t, okey, 5, "Team-SQL", 1, p1)))
	if heads := v.Heads("team-sql"); len(heads) != 2 {
		t.Fatalf("heads %+v, want one per publisher", heads)
	} else if h, _ := v.Head(Line{Publisher: opub, Key: "team-sql"}); h.CID != testCID(5) {
		t.Errorf("the other publisher's head %+v", h)
	}

	// The head's entry gone (expired), the line has none.
	clk.add(2 * time.Hour)
	v.Expire()
	if _, ok := v.Head(LineOf(v3)); ok || len(v.heads) != 0 {
		t.Errorf("heads left after expiry: %v", v.heads)
	}
}

// TestValidatorLines: on the topic, a line's own publisher contradicting
// it (a replayed older version, another expert under a version, another
// spelling of the name) is rejected; a third party's replay is ignored, as
// it may not have seen the newer version, and so is the publisher's older
// version right after the newer one (gossip reorders); an envelope whose
// version is not the announcement's, and a version without one, are
// rejected.
func TestValidatorLines(t *testing.T) {
	victim := newNode(t, quiet)
	join := func() (peer.ID, crypto.PrivKey, func(Announcement)) {
		h := newHost(t)
		ps := newPubSub(t, h)
		topic, err := ps.Join(Topic)
		if err != nil {
			t.Fatal(err)
		}
		connect(t, h, victim.h)
		waitTopicPeers(t, ps, victim.h.ID())
		return h.ID(), h.Peerstore().PrivKey(h.ID()), func(a Announcement) {
			t.Helper()
			a.Time = time.UnixMilli(time.Now().UnixMilli())
			if err := topic.Publish(context.Background(), rawEncode(t, a)); err != nil {
				t.Fatal(err)
			}
		}
	}
	owner, key, fromOwner := join()
	rogue, _, fromRogue := join()
	stats := func() Stats { return victim.s.Stats() }
	view := victim.s.View()

	v1 := version(t, key, 1, "team-sql", 1, owner)
	v2 := version(t, key, 2, "team-sql", 2, owner)
	// The validator counts a message before the service adds it to the
	// view: wait on the view.
	fromOwner(v1)
	testutil.Eventually(t, 10*time.Second, "version 1 in the view", func() bool { return view.Has(v1.CID) })
	fromOwner(v2)
	testutil.Eventually(t, 10*time.Second, "version 2 the line's head", func() bool {
		h, _ := view.Head(LineOf(v1))
		return h.CID == v2.CID
	})
	if view.Has(v1.CID) || stats().Accepted != 2 {
		t.Fatalf("version 1 held: %v; stats %+v", view.Has(v1.CID), stats())
	}

	// Ignored: the rogue replays version 1 (as its provider); the owner
	// sends it right after version 2.
	replay := v1
	replay.Provider = rogue
	fromRogue(replay)
	fromOwner(v1)
	testutil.Eventually(t, 10*time.Second, "a third party's replay and a reordering ignored", func() bool { return stats().Ignored == 2 })

	// Rejected: the owner's own contradictions, a minute on, and malformed
	// versions.
	victim.s.mu.Lock()
	victim.s.lines.reorder = 0
	victim.s.mu.Unlock()
	fromOwner(v1)
	fromOwner(version(t, key, 3, "team-sql", 2, owner))
	fromOwner(version(t, key, 4, "Team-SQL", 3, owner))
	mismatch := version(t, key, 5, "team-sql", 3, owner)
	mismatch.Version = 4
	fromOwner(mismatch)
	unsigned := testAnn(6, owner)
	unsigned.Name, unsigned.Version = "team-sql", 9
	fromOwner(unsigned)
	testutil.Eventually(t, 10*time.Second, "five rejections", func() bool { return stats().Rejected == 5 })
	for _, i := range []int{1, 3, 4, 5, 6} {
		if view.Has(testCID(i)) {
			t.Errorf("refused expert %d is in the view", i)
		}
	}
	if h, _ := view.Head(LineOf(v1)); h.CID != v2.CID {
		t.Errorf("the line's head moved to %s", h.CID)
	}

	// The next version, from anyone who holds it, is taken.
	v3 := version(t, key, 7, "team-sql", 3, rogue)
	fromRogue(v3)
	testutil.Eventually(t, 10*time.Second, "version 3 taken", func() bool {
		h, _ := view.Head(LineOf(v1))
		return h.CID == v3.CID
	})
	if n, _ := victim.s.LatestVersion(LineOf(v1)); n != 3 {
		t.Errorf("latest version %d, want 3", n)
	}
	if st := stats(); st.Rejected != 5 || st.Ignored != 2 || st.Accepted != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestCatalogCarriesHeads: a node joining late learns a line's latest
// version from a catalog; an older one behind it is refused.
func TestCatalogCarriesHeads(t *testing.T) {
	server := newNode(t, quiet)
	key := server.h.Peerstore().PrivKey(server.h.ID())
	self := server.h.ID()
	v3 := version(t, key, 3, "team-sql", 3, self)
	server.cat.add(version(t, key, 2, "team-sql", 2, self), v3, version(t, key, 1, "team-sql", 1, self))
	late := newNode(t, quiet)
	connect(t, late.h, server.h)
	testutil.Eventually(t, 10*time.Second, "the catalog pulled", func() bool { return late.s.Stats().CatalogPulls > 0 })
	h, ok := late.s.View().Head(LineOf(v3))
	if !ok || h.CID != v3.CID || late.s.View().Has(testCID(2)) || late.s.View().Has(testCID(1)) {
		t.Fatalf("head %+v; versions 2 and 1 held: %v %v", h, late.s.View().Has(testCID(2)), late.s.View().Has(testCID(1)))
	}
	if st := late.s.Stats(); st.CatalogAccepted != 2 || st.CatalogRejected != 1 {
		t.Errorf("stats %+v: version 2 then 3 taken, version 1 refused", st)
	}
}
