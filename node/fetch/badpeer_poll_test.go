package fetch

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A provider marked bad is not asked while a fetch runs either: the
// provider source is polled every pollInterval, and a marked peer it
// returns must not join (a mutation of the poll kept it, issue 19). The
// good provider is throttled so the fetch outlasts many polls; the dying
// one leaves leaves missing while the good one is busy, so the only idle
// peer a leaky poll could add is the bad one.
func TestFetchAvoidsBadPeerWhenPolled(t *testing.T) {
	src := newMem()
	data := randomBytes(6<<20, 61)
	l := addFile(t, src, data)
	reqHost := newHost(t)
	bad := wrap(src, l)
	for _, leaf := range l.Leaves {
		bad.corrupt[leaf.Cid] = true
	}
	pBad := startProvider(t, reqHost, bad, nil)
	dst := newMem()
	f := NewFetcher(reqHost, dst, Options{})
	ctx := context.Background()
	if _, err := f.Fetch(ctx, l.Root, ids(pBad), nil); !errors.Is(err, ErrVerify) || !f.IsBad(pBad.ID()) {
		t.Fatalf("fetch from a corrupt provider: %v (marked %v), want ErrVerify and the provider marked", err, f.IsBad(pBad.ID()))
	}
	bad.mu.Lock()
	asked := bad.nodes
	bad.mu.Unlock()

	dying := wrap(src, l)
	dying.failAt = 2 // fails after two leaves, about a second in
	pDying := startThrottled(t, reqHost, dying, 1<<20)
	pGood := startThrottled(t, reqHost, src, 512<<10) // its share takes seconds
	polls := 0
	got, err := f.FetchFrom(ctx, l.Root, func() []peer.ID {
		polls++
		return ids(pBad, pDying, pGood)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst, got), data) {
		t.Fatal("fetched bytes differ")
	}
	if polls < 3 {
		t.Fatalf("the provider source was polled %d times: the fetch ended before the test could tell", polls)
	}
	bad.mu.Lock()
	defer bad.mu.Unlock()
	if bad.nodes != asked {
		t.Fatalf("the marked provider was asked while the fetch polled its providers (%d requests, had %d)", bad.nodes, asked)
	}
}

// startThrottled is startProvider serving each peer at most rate bytes/s.
func startThrottled(t *testing.T, req host.Host, b Blocks, rate int64) host.Host {
	t.Helper()
	h := newHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	go NewProvider(h, b, ProviderOptions{PeerRate: rate}).Serve(ctx)
	t.Cleanup(cancel)
	connect(t, req, h)
	waitHandler(t, h)
	return h
}
