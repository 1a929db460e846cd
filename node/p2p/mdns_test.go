package p2p

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
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
	eventually(t, 30*time.Second, "mDNS to connect the hosts", func() bool {
		return hosts[0].Network().Connectedness(hosts[1].ID()) == network.Connected
	})
}

// The notifee ignores finds after close, and close waits for attempts.
func TestMDNSNotifeeClose(t *testing.T) {
	a := newTestHost(t, testOptions(t))
	b := newTestHost(t, testOptions(t))
	n := newMDNSNotifee(a, a.log)
	n.HandlePeerFound(info(b))
	n.close()
	n.HandlePeerFound(info(b)) // after close: ignored, no panic
	n.close()
}
