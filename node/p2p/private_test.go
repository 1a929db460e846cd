package p2p

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"
)

func tcpOnly(t *testing.T, o Options) Options {
	o.ListenAddrs = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}
	return o
}

func writePSK(t *testing.T) (string, pnet.PSK) {
	key := make([]byte, 32)
	rand.Read(key)
	path := filepath.Join(t.TempDir(), "swarm.key")
	body := "/key/swarm/psk/1.0.0/\n/base16/\n" + hex.EncodeToString(key) + "\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	psk, err := LoadPSK(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, psk
}

func connectWithin(a, b *Host) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return a.Connect(ctx, info(b))
}

// TestPrivateNetwork: members of a PSK swarm connect to each other; a node
// without the key, or with another key, cannot connect to them.
func TestPrivateNetwork(t *testing.T) {
	_, psk := writePSK(t)
	_, other := writePSK(t)
	mk := func(k pnet.PSK) *Host {
		o := tcpOnly(t, testOptions(t))
		o.PSK = k
		return newTestHost(t, o)
	}
	a, b := mk(psk), mk(psk)
	if err := connectWithin(a, b); err != nil {
		t.Fatalf("members of one private network: %v", err)
	}
	if err := connectWithin(mk(nil), a); err == nil {
		t.Fatal("a node without the key connected to a private network")
	}
	if err := connectWithin(mk(other), a); err == nil {
		t.Fatal("a node with another key connected")
	}
}

func TestPrivateNetworkRefusesQUIC(t *testing.T) {
	_, psk := writePSK(t)
	o := testOptions(t)
	o.ListenAddrs = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")}
	o.PSK = psk
	if _, err := NewHost(context.Background(), o); err == nil || !strings.Contains(err.Error(), "TCP only") {
		t.Fatalf("PSK with a QUIC listen address: got %v", err)
	}
}

func TestLoadPSKRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "swarm.key")
	os.WriteFile(path, []byte("not a key"), 0o600)
	if _, err := LoadPSK(path); err == nil {
		t.Fatal("garbage accepted as a private network key")
	}
}

// TestAllowPeers: a host with an allowlist neither accepts nor dials peers
// outside it, over TCP and QUIC.
func TestAllowPeers(t *testing.T) {
	friend := newTestHost(t, testOptions(t))
	stranger := newTestHost(t, testOptions(t))
	o := testOptions(t)
	o.AllowPeers = []peer.ID{friend.ID()}
	guarded := newTestHost(t, o)
	if err := connectWithin(friend, guarded); err != nil {
		t.Fatalf("allowed peer: %v", err)
	}
	if err := connectWithin(stranger, guarded); err == nil {
		// The stranger's side may complete its handshake before the gater
		// closes the connection; it must not stay connected.
		testutil.Eventually(t, 3*time.Second, "stranger disconnected", func() bool {
			return len(guarded.Network().ConnsToPeer(stranger.ID())) == 0
		})
	}
	if len(guarded.Network().ConnsToPeer(stranger.ID())) != 0 {
		t.Fatal("the guarded host kept a connection from a stranger")
	}
	if err := connectWithin(guarded, stranger); err == nil {
		t.Fatal("the guarded host dialed a peer outside its allowlist")
	}
}
