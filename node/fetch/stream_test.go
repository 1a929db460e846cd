package fetch

import (
	"context"
	"errors"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A peer that does not speak the fetch protocol fails the fetch cleanly:
// the lazily proposed protocol is refused (the stream reset) at the first
// read, and the peer is reported as a failed provider.
func TestFetchFromPeerWithoutProtocol(t *testing.T) {
	data := randomBytes(2<<20, 26)
	l := addFile(t, newMem(), data)
	reqHost, other := newHost(t), newHost(t)
	connect(t, reqHost, other)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var failed error
	_, err := NewFetcher(reqHost, newMem(), Options{Failed: func(_ cid.Cid, _ peer.ID, err error) { failed = err }}).Fetch(ctx, l.Root, ids(other), nil)
	if !errors.Is(err, ErrIncomplete) || failed == nil {
		t.Fatalf("err = %v, provider failure %v: want ErrIncomplete after a refused protocol", err, failed)
	}
}
