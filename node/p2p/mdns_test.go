package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/expertd/expertd/internal/testutil"
)

// mdnsNetns makes the network namespace TestMDNSConnects runs in: loopback
// plus a veth pair on 192.0.2.0/24 (TEST-NET-1) carrying multicast. The
// namespace has no way out, so the test's multicast stays on this machine.
const mdnsNetns = `
ip link set lo up &&
ip link add v0 type veth peer name v1 &&
ip link set v0 up && ip link set v1 up &&
ip addr add 192.0.2.1/24 dev v0 && ip addr add 192.0.2.2/24 dev v1 &&
ip route add 224.0.0.0/4 dev v0 || exit 77
exec "$0" -test.run '^TestMDNSConnects$' -test.v
`

// Two hosts with mDNS on find and connect to each other. mDNS multicasts on
// every interface, so by default the test re-runs itself in a network
// namespace of its own (Linux, root); EXPERTD_TEST_MDNS=1 runs it in place,
// on a LAN where multicast is fine.
func TestMDNSConnects(t *testing.T) {
	if os.Getenv("EXPERTD_TEST_MDNS") == "1" {
		testMDNSConnects(t)
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("mDNS multicasts beyond this machine; set EXPERTD_TEST_MDNS=1 to run it where that is allowed")
	}
	if err := exec.Command("unshare", "-n", "true").Run(); err != nil {
		testutil.Missing(t, "cannot make a network namespace for the mDNS test (%v); set EXPERTD_TEST_MDNS=1 to run it where multicast is allowed", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-n", "sh", "-c", mdnsNetns, os.Args[0])
	cmd.Env = append(os.Environ(), "EXPERTD_TEST_MDNS=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 77 {
		testutil.Missing(t, "cannot set up the mDNS test's network namespace:\n%s", out)
	}
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestMDNSConnects")) {
		t.Fatalf("mDNS test in its network namespace: %v\n%s", err, out)
	}
}

func testMDNSConnects(t *testing.T) {
	hosts := make([]*Host, 2)
	for i := range hosts {
		o := testOptions(t)
		o.MDNS = true
		// mDNS announces interface addresses: listen on all of them.
		o.ListenAddrs = []ma.Multiaddr{ma.StringCast("/ip4/0.0.0.0/tcp/0")}
		hosts[i] = newTestHost(t, o)
	}
	testutil.Eventually(t, 30*time.Second, "mDNS to connect the hosts", func() bool {
		return hosts[0].Network().Connectedness(hosts[1].ID()) == network.Connected
	})
}

// The notifee connects to what mDNS finds; close cancels the attempts in
// flight and waits for them; finds after close start nothing.
func TestMDNSNotifeeClose(t *testing.T) {
	a := newTestHost(t, testOptions(t))
	b := newTestHost(t, testOptions(t))
	n := newMDNSNotifee(a, a.log)
	n.HandlePeerFound(info(b))
	testutil.Eventually(t, 10*time.Second, "the notifee to connect to a found peer", func() bool {
		return a.Network().Connectedness(b.ID()) == network.Connected
	})

	// A peer that accepts TCP and never answers: the attempt hangs until
	// its 10 s timeout unless close cancels it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	silent := peer.AddrInfo{ID: testPeerID(t), Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))}}
	n.HandlePeerFound(silent)
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the notifee did not dial the found peer")
	}
	closed := make(chan struct{})
	go func() { n.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(mdnsConnectTimeout / 2):
		t.Fatal("close did not cancel the attempt in flight")
	}
	if len(n.slots) != 0 {
		t.Fatalf("%d attempts still hold a slot after close", len(n.slots))
	}

	c := newTestHost(t, testOptions(t))
	n.HandlePeerFound(info(c)) // after close: ignored
	if len(n.slots) != 0 {
		t.Fatal("a find after close started an attempt")
	}
	n.close() // twice: no panic
}

func testPeerID(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
