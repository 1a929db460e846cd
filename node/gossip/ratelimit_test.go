package gossip

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestLimiter(t *testing.T) {
	l := newLimiter(RateLimit{Rate: 2, Burst: 3}, 2)
	a, b, c := peer.ID("a"), peer.ID("b"), peer.ID("c")
	t0 := time.Unix(1000, 0)
	spend := func(id peer.ID, now time.Time) bool {
		if !l.allows(id, now) {
			return false
		}
		l.take(id, now)
		return true
	}
	for i := range 3 {
		if !spend(a, t0) {
			t.Fatalf("token %d of a burst of 3 refused", i+1)
		}
	}
	if spend(a, t0) {
		t.Fatal("a fourth token at once")
	}
	if !spend(b, t0) {
		t.Fatal("b limited by a's bucket")
	}
	if spend(a, t0.Add(400*time.Millisecond)) {
		t.Fatal("a token after 0.4s at 2/s")
	}
	if !spend(a, t0.Add(500*time.Millisecond)) {
		t.Fatal("no token after 0.5s at 2/s")
	}
	if l.allows(a, t0.Add(500*time.Millisecond)) {
		t.Fatal("the refill was spent twice")
	}
	if l.allows(a, t0) { // the clock went back: no refill, no panic
		t.Fatal("a token in the past")
	}

	// At most two buckets: c's evicts the least recently used, b.
	spend(c, t0.Add(time.Second))
	if l.len() != 2 || l.buckets[b] != nil || l.buckets[a] == nil {
		t.Fatalf("after eviction: %d buckets, b held: %v", l.len(), l.buckets[b] != nil)
	}

	// Full again: pruned. At 1.75s, c is (2 tokens at 1s), a is not
	// (none at 0.5s).
	if n := l.prune(t0.Add(1750 * time.Millisecond)); n != 1 || l.buckets[a] == nil {
		t.Fatalf("pruned %d at 1.75s (want c only)", n)
	}
	if n := l.prune(t0.Add(time.Minute)); n != 1 || l.len() != 0 {
		t.Fatalf("pruned %d later, %d left", n, l.len())
	}

	var none *limiter // a negative rate: no limit
	if newLimiter(RateLimit{Rate: -1, Burst: 1}, 1) != nil || !none.allows(a, t0) || none.prune(t0) != 0 {
		t.Fatal("a nil limiter limits")
	}
	none.take(a, t0)
}

// newAdmitter returns a Service with only what admit needs.
func newAdmitter(o Options) *Service {
	if o.Logger == nil {
		o.Logger = testLogger()
	}
	return newService("", o)
}

// testPeers returns n distinct valid peer IDs.
func testPeers(t testing.TB, n int) []peer.ID {
	ids := make([]peer.ID, n)
	for i := range ids {
		_, pk, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		if ids[i], err = peer.IDFromPublicKey(pk); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func TestAdmit(t *testing.T) {
	const burst = 3
	limit := RateLimit{Rate: 1, Burst: burst}
	refresh := time.Minute
	ids := testPeers(t, 4)
	rogue, honest, pub, other := ids[0], ids[1], ids[2], ids[3]
	t0 := time.UnixMilli(1_750_000_000_000)
	ann := func(i int, provider, publisher peer.ID, at time.Time, signed bool) checked {
		a := testAnn(i, provider)
		a.Publisher, a.Time = publisher, at
		c := checked{Announcement: a}
		if signed {
			c.signed = at.Add(-time.Hour) // admit trusts verify
		}
		return c
	}
	admitted := func(s *Service, c checked, now time.Time) bool {
		t.Helper()
		err := s.admit(c, c.Provider, now)
		if err != nil && !errors.Is(err, ErrRateLimited) {
			t.Fatalf("admit: %v", err)
		}
		return err == nil
	}

	t.Run("new experts of a provider", func(t *testing.T) {
		s := newAdmitter(Options{ProviderLimit: limit, PublisherLimit: RateLimit{Rate: -1}, RefreshInterval: refresh})
		for i := range 10 {
			if got := admitted(s, ann(i, rogue, rogue, t0, false), t0); got != (i < burst) {
				t.Fatalf("expert %d admitted: %v", i, got)
			}
		}
		if !admitted(s, ann(100, honest, honest, t0, false), t0) {
			t.Fatal("another provider limited")
		}
		if !admitted(s, ann(10, rogue, rogue, t0, false), t0.Add(time.Second)) {
			t.Fatal("no refill after a second at 1/s")
		}
		// A refused announcement is not recorded: not a duplicate later.
		if !admitted(s, ann(5, rogue, rogue, t0, false), t0.Add(2*time.Second)) {
			t.Fatal("a once rate-limited announcement refused later")
		}
	})

	t.Run("refreshes", func(t *testing.T) {
		dry := RateLimit{Rate: 1e-9, Burst: burst} // no refill
		s := newAdmitter(Options{ProviderLimit: dry, PublisherLimit: dry, RefreshInterval: refresh})
		for i := range burst {
			if !admitted(s, ann(i, rogue, rogue, t0, false), t0) {
				t.Fatalf("expert %d refused", i)
			}
		}
		if err := s.admit(ann(0, rogue, rogue, t0, false), rogue, t0); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("a replay: %v", err)
		}
		soon := t0.Add(refresh - time.Millisecond)
		if admitted(s, ann(0, rogue, rogue, soon, false), soon) {
			t.Fatal("a refresh sooner than RefreshInterval is free")
		}
		later := t0.Add(refresh)
		for range 3 {
			for i := range burst {
				if !admitted(s, ann(i, rogue, rogue, later, false), later) {
					t.Fatalf("refresh of expert %d after %v refused", i, refresh)
				}
			}
			later = later.Add(refresh)
		}
		// Known from a catalog: the first topic announcement is free.
		c := ann(50, rogue, rogue, soon, false)
		if admitted(s, c, soon) {
			t.Fatal("a new expert admitted with an empty bucket")
		}
		s.noteCatalog(c, soon)
		if !admitted(s, c, soon) {
			t.Fatal("the re-announcement of a catalog entry is not free")
		}
		if err := s.admit(c, c.Provider, soon); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("replay after a catalog: %v", err)
		}
	})

	t.Run("publisher", func(t *testing.T) {
		s := newAdmitter(Options{ProviderLimit: RateLimit{Rate: -1}, PublisherLimit: limit, RefreshInterval: refresh})
		sybils := testPeers(t, 10)
		// Unsigned claims naming pub do not count against it.
		for i, p := range sybils {
			if !admitted(s, ann(i, p, pub, t0, false), t0) {
				t.Fatalf("unsigned claim %d refused", i)
			}
		}
		// Its publications do, whoever provides them.
		for i, p := range sybils {
			if got := admitted(s, ann(100+i, p, pub, t0, true), t0); got != (i < burst) {
				t.Fatalf("publication %d admitted: %v", i, got)
			}
		}
		if !admitted(s, ann(200, sybils[0], other, t0, true), t0) {
			t.Fatal("another publisher limited")
		}
		// And so does its own unsigned announcement.
		if admitted(s, ann(300, pub, pub, t0, false), t0) {
			t.Fatal("the publisher's own announcement is not counted")
		}
	})

	// A swarm fetching the publisher's new expert: each node announces
	// itself as a provider of it, vouched for by the publication. Once the
	// expert is in the view, they cost the publisher nothing, or all but
	// the first burst would stay unknown as providers.
	t.Run("providers of a known expert", func(t *testing.T) {
		s := newAdmitter(Options{ProviderLimit: limit, PublisherLimit: limit, RefreshInterval: refresh})
		now := time.Now() // the view keeps what is recent
		first := ann(7, pub, pub, now, true)
		if !admitted(s, first, now) || !s.view.Add(first.Announcement) {
			t.Fatal("the publication refused")
		}
		for i, p := range testPeers(t, 3*burst) {
			if !admitted(s, ann(7, p, pub, now, true), now) {
				t.Fatalf("provider %d of the known expert refused", i)
			}
		}
		// A new expert of the publisher still costs it a token each.
		for i := range burst {
			if got := admitted(s, ann(50+i, rogue, pub, now, true), now); got != (i < burst-1) {
				t.Fatalf("new expert %d admitted: %v", i, got)
			}
		}
	})

	t.Run("both limits", func(t *testing.T) {
		s := newAdmitter(Options{ProviderLimit: limit, PublisherLimit: RateLimit{Rate: 1, Burst: 1}, RefreshInterval: refresh})
		if !admitted(s, ann(0, rogue, pub, t0, true), t0) || admitted(s, ann(1, rogue, pub, t0, true), t0) {
			t.Fatal("publisher limit of 1")
		}
		// The publisher's refusal spent none of the provider's tokens.
		for i := range burst - 1 {
			if !admitted(s, ann(10+i, rogue, pub, t0, false), t0) {
				t.Fatalf("provider token %d", i+2)
			}
		}
	})

	t.Run("forwarder", func(t *testing.T) {
		s := newAdmitter(Options{ForwarderLimit: RateLimit{Rate: 1e-9, Burst: burst}, RefreshInterval: refresh})
		relay := other
		sybils := testPeers(t, 10)
		for i, p := range sybils {
			if got := s.admit(ann(i, p, p, t0, false), relay, t0) == nil; got != (i < burst) {
				t.Fatalf("sybil %d through the relay admitted: %v", i, got)
			}
		}
		if err := s.admit(ann(20, sybils[5], sybils[5], t0, false), honest, t0); err != nil {
			t.Fatalf("through another forwarder: %v", err)
		}
		if err := s.admit(ann(21, relay, relay, t0, false), relay, t0); err != nil {
			t.Fatalf("the relay's own: %v", err)
		}
	})

	t.Run("flooding", func(t *testing.T) {
		s := newAdmitter(Options{ProviderLimit: RateLimit{Rate: 1e-9, Burst: 1}, RefreshInterval: refresh})
		if !admitted(s, ann(0, rogue, rogue, t0, false), t0) {
			t.Fatal("first refused")
		}
		// Checked before their envelopes, as validate does: a provider's
		// own announcements over its limit are ignored while it has
		// strikes, then rejected.
		for i := 1; i <= floodStrikes.Burst+1; i++ {
			err := s.limits(ann(i, rogue, rogue, t0, false).Announcement, "", rogue, t0, false)
			if flooding := errors.Is(err, ErrFlooding); flooding != (i > floodStrikes.Burst) || !errors.Is(err, ErrRateLimited) {
				t.Fatalf("announcement %d: %v", i, err)
			}
			if got := verdict(err); got != pubsub.ValidationIgnore && i <= floodStrikes.Burst {
				t.Fatalf("announcement %d: verdict %v", i, got)
			}
		}
		if got := verdict(s.limits(ann(5000, rogue, rogue, t0, false).Announcement, "", rogue, t0, false)); got != pubsub.ValidationReject {
			t.Fatalf("a flood's verdict %v", got)
		}
		// Forwarded, the same announcements are only ignored: the relay
		// is not to blame for them.
		if err := s.limits(ann(5001, rogue, rogue, t0, false).Announcement, "", honest, t0, false); errors.Is(err, ErrFlooding) || !errors.Is(err, ErrRateLimited) {
			t.Fatalf("forwarded: %v", err)
		}
	})

	t.Run("MaxPerProvider", func(t *testing.T) {
		s := newAdmitter(Options{MaxPerProvider: 2, RefreshInterval: refresh})
		now := time.Now()
		for i := range 2 {
			c := ann(i, rogue, rogue, now, false)
			if !admitted(s, c, now) {
				t.Fatalf("expert %d refused", i)
			}
			s.view.add(c, rogue)
		}
		if admitted(s, ann(2, rogue, rogue, now, false), now) {
			t.Fatal("a third expert of a provider bounded at 2")
		}
		later := now.Add(refresh)
		if !admitted(s, ann(0, rogue, rogue, later, false), later) {
			t.Fatal("a refresh of a known one refused")
		}
		if !admitted(s, ann(2, honest, honest, now, false), now) {
			t.Fatal("another provider refused")
		}
	})

	t.Run("RefreshInterval negative", func(t *testing.T) {
		s := newAdmitter(Options{ProviderLimit: RateLimit{Rate: 1, Burst: 1}, RefreshInterval: -1})
		if !admitted(s, ann(0, rogue, rogue, t0, false), t0) {
			t.Fatal("first")
		}
		later := t0.Add(time.Hour / 2).Add(-time.Millisecond)
		for range 2 {
			s.providers.take(rogue, later)
		}
		if admitted(s, ann(0, rogue, rogue, later, false), later) {
			t.Fatal("a free refresh with RefreshInterval < 0")
		}
	})
}

// TestRateLimitFlood: a rogue node floods the topic with announcements of
// new experts, as their provider or as their publisher under many
// identities; the victim accepts a burst of them and ignores the rest, and
// still accepts another provider's and another publisher's announcements.
func TestRateLimitFlood(t *testing.T) {
	const burst, flood = 5, 20
	limit := RateLimit{Rate: 1e-9, Burst: burst} // no refill during the test
	victim := newNode(t, Options{Reannounce: -1, ProviderLimit: limit, PublisherLimit: limit})
	honest := newNode(t, quiet)
	rh := newHost(t)
	rps := newPubSub(t, rh)
	rtopic, err := rps.Join(Topic)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, rh, victim.h)
	connect(t, honest.h, victim.h)
	waitTopicPeers(t, rps, victim.h.ID())
	waitTopicPeers(t, honest.ps, victim.h.ID())
	rogue := rh.ID()
	ctx := context.Background()
	stats := func() Stats { return victim.s.Stats() }
	// Publish one message at a time, so that none is lost to a full
	// validation queue.
	seen := uint64(0)
	publish := func(data []byte, opts ...pubsub.PubOpt) {
		t.Helper()
		if err := rtopic.Publish(ctx, data, opts...); err != nil {
			t.Fatal(err)
		}
		seen++
		testutil.Eventually(t, 10*time.Second, fmt.Sprintf("message %d validated", seen), func() bool {
			st := stats()
			return st.Accepted+st.Ignored+st.Rejected >= seen
		})
	}

	// As provider and publisher.
	for i := range flood {
		publish(rawEncode(t, testAnn(i, rogue)))
	}
	if st := stats(); st.Accepted != burst || st.RateLimited != flood-burst || st.Ignored != flood-burst || st.Rejected != 0 {
		t.Fatalf("after the flood: %+v", st)
	}
	for i := range flood {
		if _, ok := victim.s.View().Get(testCID(i)); ok != (i < burst) {
			t.Fatalf("expert %d in the view: %v", i, ok)
		}
	}
	a := testAnn(1000, honest.h.ID())
	if err := honest.s.Announce(ctx, a); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the honest node's announcement accepted", func() bool {
		return hasProvider(victim.s.View(), a.CID, honest.h.ID())
	})
	seen++

	// As publisher, each announcement signed by a new identity.
	pubKey, pub := fuzzKey(t)
	sybil := func() (crypto.PrivKey, peer.ID) {
		sk, pk, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPublicKey(pk)
		if err != nil {
			t.Fatal(err)
		}
		return sk, id
	}
	signed := func(i int, key crypto.PrivKey, publisher, provider peer.ID) []byte {
		a := testAnn(i, provider)
		a.Publisher = publisher
		env, err := SignPublication(key, a)
		if err != nil {
			t.Fatal(err)
		}
		a.Envelope = env
		return rawEncode(t, a)
	}
	before := stats()
	for i := range flood {
		sk, id := sybil()
		publish(signed(100+i, pubKey, pub, id), pubsub.WithSecretKeyAndPeerId(sk, id))
	}
	if st := stats(); st.Accepted-before.Accepted != burst || st.RateLimited-before.RateLimited != flood-burst {
		t.Fatalf("after the flood of publications: %+v (before: %+v)", st, before)
	}
	// Another publisher's publication, and an unsigned claim naming pub,
	// from the same kind of identities.
	otherKey, other := sybil()
	sk, id := sybil()
	publish(signed(200, otherKey, other, id), pubsub.WithSecretKeyAndPeerId(sk, id))
	claim := testAnn(201, id)
	claim.Publisher = pub
	publish(rawEncode(t, claim), pubsub.WithSecretKeyAndPeerId(sk, id))
	if st := stats(); st.Accepted-before.Accepted != burst+2 || st.RateLimited-before.RateLimited != flood-burst {
		t.Fatalf("another publisher limited: %+v (before: %+v)", st, before)
	}
}

// TestOwnReannounceNotLimited: a node's own re-announcements never count
// against its own limits, however tight.
func TestOwnReannounceNotLimited(t *testing.T) {
	const experts = 8
	one := RateLimit{Rate: 1e-9, Burst: 1}
	n := newNode(t, Options{Reannounce: 20 * time.Millisecond, MaxPerSecond: 1000, ProviderLimit: one, PublisherLimit: one})
	for i := range experts {
		a := testAnn(i, n.h.ID())
		a.Provider, a.Time = "", time.Time{}
		n.cat.add(a)
	}
	testutil.Eventually(t, 10*time.Second, "three rounds of re-announcements", func() bool {
		return n.s.Stats().Published >= 3*experts
	})
	if st := n.s.Stats(); st.PublishErrors != 0 || st.RateLimited != 0 {
		t.Fatalf("stats %+v", st)
	}
}
