package p2p

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

var (
	loopTCP  = ma.StringCast("/ip4/127.0.0.1/tcp/0")
	loopQUIC = ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")
)

// testOptions are a loopback-only host's: no port mapping (it would talk
// to the LAN's router), no mDNS (multicast), a DHT server that keeps
// loopback addresses.
func testOptions(t *testing.T) Options {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		Identity:          key,
		ListenAddrs:       []ma.Multiaddr{loopTCP, loopQUIC},
		DHTMode:           DHTServer,
		AllowPrivateAddrs: true,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func newTestHost(t *testing.T, o Options) *Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := NewHost(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return h
}

func info(h *Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} }
