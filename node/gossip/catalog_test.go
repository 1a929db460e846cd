package gossip

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/internal/testutil"
	pb "github.com/expertd/expertd/proto"
)

// TestReadCatalog: readCatalog on catalogs as encodeCatalog writes them,
// and on malformed streams.
func TestReadCatalog(t *testing.T) {
	key, self := fuzzKey(t)
	s := newService(self, Options{MaxCatalog: 4, CatalogEntryLimit: RateLimit{Rate: -1}, Logger: testLogger()})
	now := time.UnixMilli(1_750_000_000_000)
	serve := func(entries ...Announcement) []byte {
		var b bytes.Buffer
		skipped, _, err := s.encodeCatalog(&b, entries, now)
		if err != nil || skipped != 0 {
			t.Fatalf("encodeCatalog: %d skipped, %v", skipped, err)
		}
		return b.Bytes()
	}
	signed := testAnn(2, self)
	env, err := SignPublication(key, signed)
	if err != nil {
		t.Fatal(err)
	}
	signed.Envelope = env
	renamed := signed
	renamed.Name = "renamed"
	real := serve(testAnn(1, self), signed, renamed)

	for _, tc := range []struct {
		name               string
		data               []byte
		from               []byte // sender, if not self
		accepted, rejected int
		err                error
	}{
		{"empty", nil, nil, 0, 0, nil},
		{"empty frame", []byte{0}, nil, 0, 0, nil},
		{"catalog", real, nil, 2, 1, nil},
		{"two frames", append(serve(testAnn(1, self)), serve(testAnn(2, self))...), nil, 2, 0, nil},
		{"from another peer", real, []byte(testPeers(t, 1)[0]), 0, 3, nil},
		{"too many", append(real, real...), nil, 3, 1, ErrCatalog},
		{"cut in a frame", real[:len(real)-1], nil, 0, 0, io.ErrUnexpectedEOF},
		{"cut after a length", real[:1], nil, 0, 0, io.ErrUnexpectedEOF},
		{"cut in a length", []byte{0x80}, nil, 0, 0, io.ErrUnexpectedEOF},
		{"oversized frame", binary.AppendUvarint(nil, maxCatalogFrame+1), nil, 0, 0, ErrCatalog},
		{"overlong length", bytes.Repeat([]byte{0x80}, binary.MaxVarintLen64+1), nil, 0, 0, ErrCatalog},
		{"garbage frame", []byte{2, 0xff, 0xff}, nil, 0, 0, ErrCatalog},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := self
			if tc.from != nil {
				from = peer.ID(tc.from)
			}
			added := 0
			accepted, rejected, err := s.readCatalog(bytes.NewReader(tc.data), from, func() time.Time { return now }, func(c checked, at time.Time) {
				if c.Provider != from || !at.Equal(now) {
					t.Fatalf("added %s's entry at %v", c.Provider, at)
				}
				added++
			})
			if accepted != tc.accepted || rejected != tc.rejected || added != accepted {
				t.Errorf("accepted %d (added %d), rejected %d; want %d, %d", accepted, added, rejected, tc.accepted, tc.rejected)
			}
			if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("err %v, want %v", err, tc.err)
			}
			if errors.Is(err, io.EOF) {
				t.Errorf("a failed read looks like a clean end: %v", err)
			}
		})
	}
}

// pullCatalog reads a's catalog over a new stream from h: its entries, or
// the error of the stream.
func pullCatalog(t *testing.T, h host.Host, a peer.ID) ([]*pb.Announcement, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := h.NewStream(ctx, a, CatalogProtocol)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	_ = st.CloseWrite()
	var entries []*pb.Announcement
	br := bufio.NewReader(st)
	var buf []byte
	for {
		var cat pb.Catalog
		err := readMsg(br, &cat, maxCatalogFrame, &buf)
		if err == io.EOF {
			return entries, nil
		}
		if err != nil {
			return entries, err
		}
		entries = append(entries, cat.GetEntries()...)
	}
}

// TestCatalogRateLimited: a peer gets one catalog on each connection and,
// on the same connection, CatalogLimit's burst more; then its streams are
// reset. Another peer is served meanwhile, and so is the first one again
// when it reconnects.
func TestCatalogRateLimited(t *testing.T) {
	a := newNode(t, Options{Logger: testLogger(), Reannounce: -1, CatalogLimit: RateLimit{Rate: 1e-9, Burst: 2}})
	a.cat.add(testAnn(1, a.h.ID()))
	b, c := newHost(t), newHost(t)
	connect(t, b, a.h)
	connect(t, c, a.h)
	for i := range 3 {
		if got, err := pullCatalog(t, b, a.h.ID()); err != nil || len(got) != 1 {
			t.Fatalf("pull %d: %d entries, %v", i, len(got), err)
		}
	}
	if got, err := pullCatalog(t, b, a.h.ID()); err == nil {
		t.Fatalf("pull beyond the free one and the burst of 2: %d entries, no error", len(got))
	}
	if got, err := pullCatalog(t, c, a.h.ID()); err != nil || len(got) != 1 {
		t.Fatalf("another peer's pull: %d entries, %v", len(got), err)
	}
	reconnect(t, b, a.h)
	if got, err := pullCatalog(t, b, a.h.ID()); err != nil || len(got) != 1 {
		t.Fatalf("pull on a new connection: %d entries, %v", len(got), err)
	}
	if st := a.s.Stats(); st.CatalogRateLimited != 1 {
		t.Errorf("stats %+v: want 1 rate-limited", st)
	}
}

// TestCatalogPullRetried: a node serving MaxServing catalogs already resets
// the next catalog stream; the puller tries again while connected and gets
// the catalog once the node is free.
func TestCatalogPullRetried(t *testing.T) {
	big := Options{Logger: testLogger(), Reannounce: -1, MaxCatalog: 4000, MaxPerProvider: 4000}
	a := newNode(t, Options{Logger: testLogger(), Reannounce: -1, MaxServing: 1, MaxCatalog: 4000})
	for i := range 4000 { // more than a stream's window: a slow reader holds the serve
		a.cat.add(testAnn(i, a.h.ID()))
	}
	hog := newHost(t)
	connect(t, hog, a.h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := hog.NewStream(ctx, a.h.ID(), CatalogProtocol)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.CloseWrite()
	if _, err := st.Read(make([]byte, 1)); err != nil { // a's one serving slot is taken, and kept
		t.Fatal(err)
	}

	b := newNode(t, big)
	connect(t, b.h, a.h)
	testutil.Eventually(t, 10*time.Second, "b's pull refused", func() bool { return b.s.Stats().CatalogPullErrors > 0 })
	_ = st.Reset()
	testutil.Eventually(t, 10*time.Second, "b holds a's catalog", func() bool { return b.s.View().Len() == 4000 })
	if st := a.s.Stats(); st.CatalogServeErrors == 0 {
		t.Errorf("a's stats %+v: no refused catalog stream", st)
	}
}

// TestCatalogPullTimeoutNotRetried: a peer that takes the catalog stream
// and never answers costs one pull, ended by ExchangeTimeout, not three.
func TestCatalogPullTimeoutNotRetried(t *testing.T) {
	silent := newHost(t)
	var streams atomic.Int32
	silent.SetStreamHandler(CatalogProtocol, func(st network.Stream) {
		streams.Add(1)
		_, _ = io.Copy(io.Discard, st) // reads the close, writes nothing
	})
	b := newNode(t, Options{Logger: testLogger(), Reannounce: -1, ExchangeTimeout: 200 * time.Millisecond})
	connect(t, b.h, silent)
	testutil.Eventually(t, 10*time.Second, "the pull timed out", func() bool { return b.s.Stats().CatalogPullErrors > 0 })
	// A pull holds its claim on the peer through its retries: released, it
	// has made every try it will.
	testutil.Eventually(t, 15*time.Second, "b's pull of the silent peer over", func() bool {
		b.s.mu.Lock()
		defer b.s.mu.Unlock()
		return !b.s.pulling[silent.ID()]
	})
	if n := streams.Load(); n != 1 {
		t.Fatalf("%d catalog streams to a silent peer, want 1", n)
	}
}

// TestCatalogEntryLimit: a peer's catalog brings no more new experts than
// its CatalogEntryLimit tokens and MaxPerProvider allow: the pull stops at
// the first entry over them, before its signature is checked. Pulled
// again, the experts it brought are refreshed for free and nothing more
// comes in.
func TestCatalogEntryLimit(t *testing.T) {
	victim := newNode(t, Options{Reannounce: -1, MaxPerProvider: 5, CatalogEntryLimit: RateLimit{Rate: 1e-9, Burst: 3}})
	serve := func(n int) host.Host {
		rh := newHost(t)
		rh.SetStreamHandler(CatalogProtocol, func(s network.Stream) {
			cat := &pb.Catalog{}
			for i := range n {
				cat.Entries = append(cat.Entries, toWire(testAnn(i, rh.ID())))
			}
			w := bufio.NewWriter(s)
			if _, err := pb.WriteFrame(w, cat, nil); err != nil || w.Flush() != nil {
				_ = s.Reset()
				return
			}
			_ = s.Close()
		})
		return rh
	}
	held := func(p peer.ID) int {
		n := 0
		for i := range 10 {
			if hasProvider(victim.s.View(), testCID(i), p) {
				n++
			}
		}
		return n
	}
	rh := serve(10)
	connect(t, rh, victim.h)
	testutil.Eventually(t, 5*time.Second, "catalog pulled", func() bool { return victim.s.Stats().CatalogPulls == 1 })
	if st := victim.s.Stats(); st.CatalogAccepted != 3 || st.CatalogEntriesLimited != 1 || held(rh.ID()) != 3 {
		t.Fatalf("%d held, stats %+v", held(rh.ID()), st)
	}
	reconnect(t, rh, victim.h)
	testutil.Eventually(t, 5*time.Second, "catalog pulled again", func() bool { return victim.s.Stats().CatalogPulls == 2 })
	if st := victim.s.Stats(); st.CatalogAccepted != 6 || st.CatalogEntriesLimited != 2 || held(rh.ID()) != 3 {
		t.Fatalf("pulled again: %d held, stats %+v", held(rh.ID()), st)
	}
	// MaxPerProvider: a peer with tokens to spare gets 5 in.
	big := newNode(t, Options{Reannounce: -1, MaxPerProvider: 5})
	rh2 := serve(10)
	connect(t, rh2, big.h)
	testutil.Eventually(t, 5*time.Second, "catalog pulled", func() bool { return big.s.Stats().CatalogPulls == 1 })
	if st := big.s.Stats(); st.CatalogAccepted != 5 || st.CatalogEntriesLimited != 1 || big.s.View().Len() != 5 || st.CatalogPullErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}
