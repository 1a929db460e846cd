package gossip

import (
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fakeClock is a settable clock for views.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func (c *fakeClock) ann(i int, p peer.ID) Announcement {
	a := testAnn(i, p)
	a.Time = c.t
	return a
}

func newTestView(ttl time.Duration, max int) (*View, *fakeClock) {
	return newBoundedView(ViewOptions{TTL: ttl, MaxExperts: max})
}

func newBoundedView(o ViewOptions) (*View, *fakeClock) {
	clk := &fakeClock{t: time.UnixMilli(1_700_000_000_000)}
	v := NewView(o)
	v.now = clk.now
	return v, clk
}

func TestViewProvidersAndTTL(t *testing.T) {
	v, clk := newTestView(time.Minute, 0)
	p1, p2, p3 := testPeer(t), testPeer(t), testPeer(t)
	c := testCID(1)

	if !v.Add(clk.ann(1, p1)) {
		t.Fatal("first Add: not new")
	}
	clk.add(20 * time.Second)
	if v.Add(clk.ann(1, p2)) {
		t.Fatal("second provider: reported new")
	}
	clk.add(20 * time.Second)
	v.Add(clk.ann(1, p3))
	if got, want := v.Providers(c), []peer.ID{p3, p2, p1}; !slices.Equal(got, want) {
		t.Fatalf("providers %v, want most recent first %v", got, want)
	}
	e, ok := v.Get(c)
	if !ok || e.Provider != p3 || len(e.Providers) != 3 {
		t.Fatalf("Get: %+v %v", e, ok)
	}

	// p1 expires after the TTL; reads skip it before any sweep.
	clk.add(25 * time.Second)
	if got, want := v.Providers(c), []peer.ID{p3, p2}; !slices.Equal(got, want) {
		t.Fatalf("after p1's TTL: %v, want %v", got, want)
	}
	// An old announcement does not refresh a provider.
	old := clk.ann(1, p2)
	old.Time = clk.t.Add(-50 * time.Second)
	v.Add(old)
	if got, want := v.Providers(c), []peer.ID{p3, p2}; !slices.Equal(got, want) {
		t.Fatalf("after an old announcement: %v, want %v", got, want)
	}
	// A future-dated one counts as now.
	fut := clk.ann(1, p1)
	fut.Time = clk.t.Add(5 * time.Minute)
	v.Add(fut)
	e, _ = v.Get(c)
	if e.Providers[0].ID != p1 || !e.Providers[0].LastSeen.Equal(clk.t) {
		t.Fatalf("future-dated: %+v", e.Providers)
	}

	v.DropProvider(c, p1)
	if slices.Contains(v.Providers(c), p1) {
		t.Fatal("DropProvider: still there")
	}
	clk.add(2 * time.Minute)
	if _, ok := v.Get(c); ok {
		t.Fatal("Get after every provider expired: found")
	}
	if v.Len() != 1 {
		t.Fatalf("Len before Expire: %d", v.Len())
	}
	if n := v.Expire(); n != 1 || v.Len() != 0 {
		t.Fatalf("Expire: removed %d, Len %d", n, v.Len())
	}
	// Stale announcements are not added at all.
	stale := clk.ann(2, p1)
	stale.Time = clk.t.Add(-2 * time.Minute)
	if v.Add(stale) || v.Len() != 0 {
		t.Fatal("stale announcement added")
	}
}

func TestViewListAndMetadata(t *testing.T) {
	v, clk := newTestView(time.Hour, 0)
	p := testPeer(t)
	mk := func(i int, name, base, peft string) Announcement {
		a := clk.ann(i, p)
		a.Name, a.BaseModel, a.PeftType = name, base, peft
		return a
	}
	v.Add(mk(1, "Math-Tutor", "llama-3", "lora"))
	v.Add(mk(2, "code-helper", "llama-3", "LoRA"))
	v.Add(mk(3, "math-solver", "mistral-7b", "ia3"))

	names := func(es []Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Name)
		}
		return out
	}
	for _, tc := range []struct {
		f    Filter
		want []string
	}{
		{Filter{}, []string{"Math-Tutor", "code-helper", "math-solver"}},
		{Filter{BaseModel: "LLAMA-3"}, []string{"Math-Tutor", "code-helper"}},
		{Filter{PeftType: "lora"}, []string{"Math-Tutor", "code-helper"}},
		{Filter{Name: "MATH"}, []string{"Math-Tutor", "math-solver"}},
		{Filter{Name: "math", BaseModel: "mistral-7b"}, []string{"math-solver"}},
		{Filter{PeftType: "none"}, nil},
	} {
		if got := names(v.List(tc.f)); !slices.Equal(got, tc.want) {
			t.Errorf("List(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}

	// The latest announcement's metadata wins; an older one does not.
	clk.add(time.Second)
	newer := mk(1, "math-tutor-v2", "llama-3", "lora")
	v.Add(newer)
	older := newer
	older.Name, older.Time = "math-tutor-v0", clk.t.Add(-time.Minute)
	v.Add(older)
	if e, _ := v.Get(testCID(1)); e.Name != "math-tutor-v2" {
		t.Fatalf("metadata %q, want the latest", e.Name)
	}
	// Entries do not share memory with the view.
	e, _ := v.Get(testCID(1))
	e.TargetModules[0] = "mutated"
	if e2, _ := v.Get(testCID(1)); e2.TargetModules[0] == "mutated" {
		t.Fatal("Get returned shared memory")
	}
}

func TestViewSubscribeNeverBlocks(t *testing.T) {
	v, clk := newTestView(time.Hour, 0)
	p := testPeer(t)
	ch, cancel := v.Subscribe()
	slow, cancelSlow := v.Subscribe() // never read
	defer cancelSlow()

	v.Add(clk.ann(1, p))
	v.Add(clk.ann(1, testPeer(t))) // known expert: no notification
	if got := <-ch; got != testCID(1) {
		t.Fatalf("notified %v", got)
	}
	select {
	case c := <-ch:
		t.Fatalf("notified again for %v", c)
	default:
	}
	done := make(chan struct{})
	go func() {
		for i := 2; i < 2+2*subscriberBuffer; i++ {
			v.Add(clk.ann(i, p))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Add blocked on a full subscriber")
	}
	if d := v.dropped.Load(); d == 0 {
		t.Fatal("no dropped notification counted")
	}
	cancel()
	cancel()       // idempotent
	for range ch { // drains, then ends: the channel is closed
	}
	_ = slow
}

// TestViewPrefersSigned: signed metadata wins over unsigned claims, the
// publication held is kept against another publisher's unless that one is
// preferred, and a publisher may re-sign.
func TestViewPrefersSigned(t *testing.T) {
	v, clk := newTestView(time.Hour, 0)
	key, publisher := testKey(t)
	otherKey, otherPublisher := testKey(t)
	p1, p2 := testPeer(t), testPeer(t)
	c := testCID(1)
	named := func(p peer.ID, name string) Announcement {
		a := clk.ann(1, p)
		a.Name = name
		return a
	}
	signed := func(k crypto.PrivKey, p peer.ID, name string, at time.Time) Announcement {
		a := named(p, name)
		a.Time = at
		a = sign(t, k, a)
		a.Time = clk.t
		return a
	}
	check := func(what, name string, isSigned bool, pub peer.ID) {
		t.Helper()
		e, ok := v.Get(c)
		if !ok || e.Name != name || e.Signed != isSigned || e.Publisher != pub || isSigned != (len(e.Envelope) > 0) {
			t.Fatalf("%s: entry %q signed %v by %s (envelope %d bytes), want %q signed %v by %s",
				what, e.Name, e.Signed, e.Publisher, len(e.Envelope), name, isSigned, pub)
		}
	}

	v.Add(named(p1, "claim"))
	check("unsigned", "claim", false, p1)

	clk.add(time.Second)
	t0 := clk.t.Add(-time.Hour) // signed long ago
	orig := signed(key, p2, "original", t0)
	orig.Time = clk.t.Add(-time.Minute) // and announced before the claim
	v.Add(orig)
	check("signed, announced earlier than the claim", "original", true, publisher)

	clk.add(time.Second)
	v.Add(named(p1, "rename"))
	check("a later unsigned claim", "original", true, publisher)
	if !slices.Contains(v.Providers(c), p1) {
		t.Fatal("the unsigned announcement's provider not recorded")
	}

	clk.add(time.Second)
	v.Add(signed(otherKey, p1, "squatter", clk.t))
	check("another publisher's later publication", "original", true, publisher)

	clk.add(time.Second)
	v.Add(signed(key, p1, "re-signed", t0.Add(time.Minute)))
	check("re-signed later by its publisher", "re-signed", true, publisher)
	e, _ := v.Get(c)
	if e.Provider != p1 {
		t.Fatalf("provider %s", e.Provider)
	}

	clk.add(time.Second)
	v.Add(signed(key, p2, "original", t0))
	check("an older signature of its publisher", "re-signed", true, publisher)

	// The same publication from another provider, later: its
	// announcement is the latest.
	clk.add(time.Second)
	again := signed(key, p2, "re-signed", t0.Add(time.Minute))
	v.Add(again)
	if e, _ := v.Get(c); e.Provider != p2 || !e.Time.Equal(again.Time) {
		t.Fatalf("the latest announcement of the same publication: %+v", e.Announcement)
	}

	// Add verifies envelopes itself.
	forged := signed(key, p1, "forged", clk.t)
	forged.Name = "not signed"
	if v.Add(forged) {
		t.Fatal("mismatched envelope: reported new")
	}
	check("a mismatched envelope", "re-signed", true, publisher)
	bad := signed(key, p1, "bad", clk.t)
	bad.CID = testCID(2)
	if v.Add(bad) || v.Len() != 1 {
		t.Fatal("an envelope of another expert added")
	}

	// A preferred publisher's publication replaces the one held and is
	// not replaced by another.
	v, clk = newBoundedView(ViewOptions{TTL: time.Hour, Prefer: []peer.ID{otherPublisher}})
	v.Add(signed(key, p1, "first", clk.t))
	clk.add(time.Second)
	v.Add(signed(otherKey, p2, "trusted", clk.t))
	check("a preferred publisher's", "trusted", true, otherPublisher)
	clk.add(time.Second)
	v.Add(signed(key, p1, "first, re-signed", clk.t))
	check("a re-signature of a publisher not preferred", "trusted", true, otherPublisher)
	v.Add(named(p1, "claim"))
	check("an unsigned claim", "trusted", true, otherPublisher)
}
