package natlab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The lab's addresses. The "internet" is 192.0.0.128/27: part of IANA's
// 192.0.0.0/24, never routed on the internet, yet public to go-multiaddr
// (whose unroutable list holds 192.0.0.0/26 only), so AutoNAT, hole
// punching and the relay treat it as the internet; 198.18.0.0/15 and the
// documentation ranges would be private or unroutable to them. The LANs
// are private. All of it lives in namespaces the test made.
const (
	ipR     = "192.0.0.130" // the public node: bootstrap, relay
	ipRA    = "192.0.0.131" // A's router, its public side
	ipRB    = "192.0.0.132" // B's router
	wanBits = "/27"
	ipA     = "10.1.0.2"
	gwA     = "10.1.0.1"
	ipB     = "10.2.0.2"
	gwB     = "10.2.0.1"
	lanBits = "/24"
	p2pPort = "4001"
)

// nat is what a site's router does.
type nat int

const (
	// coneFirewall maps a LAN port to the same public port whatever the
	// destination (MASQUERADE keeps ports) and drops unsolicited packets:
	// hole punching works.
	coneFirewall nat = iota
	// portRestricted maps like coneFirewall but answers unsolicited
	// packets itself: a hole punch's first packet, arriving before the
	// router saw the way out, leaves a conntrack entry that makes the
	// router map the LAN node's own packet to another port, and the punch
	// fails.
	portRestricted
	// symmetric maps each new destination to a random port
	// (MASQUERADE --random-fully): the port peers observe is no use to
	// another peer, and hole punching cannot work.
	symmetric
	// forwarded is coneFirewall with TCP and UDP p2pPort forwarded to the
	// LAN node.
	forwarded
)

func (n nat) String() string {
	return [...]string{"cone NAT, firewall", "port-restricted NAT", "symmetric NAT", "port forwarded"}[n]
}

// rules are the router's iptables commands, for the node at lanIP.
func (n nat) rules(lanIP string) [][]string {
	masq := []string{"-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
	if n == symmetric {
		masq = append(masq, "--random-fully")
	}
	rules := [][]string{
		masq,
		// Like an ISP's bogon filter: the other site's private
		// addresses lead nowhere, silently.
		{"-A", "FORWARD", "-o", "wan", "-d", "10.0.0.0/8", "-j", "DROP"},
	}
	if n != portRestricted {
		rules = append(rules, []string{"-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"})
	}
	if n == forwarded {
		for _, proto := range []string{"tcp", "udp"} {
			rules = append(rules, []string{"-t", "nat", "-A", "PREROUTING", "-i", "wan", "-p", proto, "--dport", p2pPort,
				"-j", "DNAT", "--to-destination", lanIP + ":" + p2pPort})
		}
	}
	return rules
}

// nsPrefix starts the names of this process's namespaces; stale ones (of
// a process that is gone) are removed by sweepStale.
const nsPrefix = "natlab-"

// topo is one case's network: namespaces prefix+{inet,r,ra,rb,a,b}.
type topo struct {
	prefix string
}

func (tp *topo) ns(role string) string { return tp.prefix + role }

var roles = []string{"inet", "r", "ra", "rb", "a", "b"}

// newTopo builds the network of one case: the bridge "inet" with R and
// the two routers on it, and behind each router its LAN node. It is torn
// down when the test ends.
func newTopo(t *testing.T, name string, natA, natB nat) *topo {
	t.Helper()
	tp := &topo{prefix: fmt.Sprintf("%s%d-%s-", nsPrefix, os.Getpid(), name)}
	t.Cleanup(func() { tp.remove(t) })
	for _, r := range roles {
		ipCmd(t, "netns", "add", tp.ns(r))
		ipIn(t, tp.ns(r), "link", "set", "lo", "up")
	}
	ipIn(t, tp.ns("inet"), "link", "add", "br0", "type", "bridge")
	ipIn(t, tp.ns("inet"), "link", "set", "br0", "up")
	for _, w := range []struct{ role, ip string }{{"r", ipR}, {"ra", ipRA}, {"rb", ipRB}} {
		port := w.role + "-port"
		ipCmd(t, "link", "add", "wan", "netns", tp.ns(w.role), "type", "veth", "peer", "name", port, "netns", tp.ns("inet"))
		ipIn(t, tp.ns("inet"), "link", "set", port, "master", "br0", "up")
		ipIn(t, tp.ns(w.role), "addr", "add", w.ip+wanBits, "dev", "wan")
		ipIn(t, tp.ns(w.role), "link", "set", "wan", "up")
	}
	for _, s := range []struct {
		router, node, gw, ip string
		nat                  nat
	}{{"ra", "a", gwA, ipA, natA}, {"rb", "b", gwB, ipB, natB}} {
		ipCmd(t, "link", "add", "eth0", "netns", tp.ns(s.node), "type", "veth", "peer", "name", "lan", "netns", tp.ns(s.router))
		ipIn(t, tp.ns(s.router), "addr", "add", s.gw+lanBits, "dev", "lan")
		ipIn(t, tp.ns(s.router), "link", "set", "lan", "up")
		ipIn(t, tp.ns(s.node), "addr", "add", s.ip+lanBits, "dev", "eth0")
		ipIn(t, tp.ns(s.node), "link", "set", "eth0", "up")
		ipIn(t, tp.ns(s.node), "route", "add", "default", "via", s.gw)
		run(t, "ip", "netns", "exec", tp.ns(s.router), "sysctl", "-qw", "net.ipv4.ip_forward=1")
		for _, rule := range s.nat.rules(s.ip) {
			run(t, "ip", append([]string{"netns", "exec", tp.ns(s.router), "iptables"}, rule...)...)
		}
	}
	return tp
}

// remove deletes the namespaces: their links, addresses and iptables
// rules go with them.
func (tp *topo) remove(t *testing.T) {
	for _, r := range roles {
		if _, err := os.Stat(filepath.Join("/run/netns", tp.ns(r))); err == nil {
			if out, err := exec.Command("ip", "netns", "del", tp.ns(r)).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", tp.ns(r), err, out)
			}
		}
	}
}

// sweepStale removes the namespaces of lab runs whose process is gone
// (one killed by a test timeout never ran its cleanups).
func sweepStale() {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			_ = exec.Command("ip", "netns", "del", e.Name()).Run()
		}
	}
}

func ipCmd(t *testing.T, args ...string) { t.Helper(); run(t, "ip", args...) }

func ipIn(t *testing.T, ns string, args ...string) {
	t.Helper()
	run(t, "ip", append([]string{"-n", ns}, args...)...)
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// unavailable says why the lab cannot run on this machine, "" when it can:
// it needs root, ip and iptables, and tries a namespace with a NAT rule.
func unavailable() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	for _, bin := range []string{"ip", "iptables", "sysctl"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " not found"
		}
	}
	ns := fmt.Sprintf("%s%d-probe", nsPrefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Sprintf("ip netns add: %v: %s", err, bytes.TrimSpace(out))
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	if out, err := exec.Command("ip", "netns", "exec", ns, "iptables", "-t", "nat", "-A", "POSTROUTING", "-j", "MASQUERADE", "--random-fully").CombinedOutput(); err != nil {
		return fmt.Sprintf("iptables in a namespace: %v: %s", err, bytes.TrimSpace(out))
	}
	return ""
}

// requireLab skips the test where the lab cannot run, or fails it when CI
// is set: CI machines are expected to run it.
func requireLab(t *testing.T) {
	t.Helper()
	why := unavailable()
	if why == "" {
		return
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatalf("CI is set but the NAT lab cannot run: %s (it needs root, ip and iptables in network namespaces)", why)
	}
	t.Skipf("the NAT lab cannot run here: %s (it needs root, ip and iptables in network namespaces; with CI=true this fails)", why)
}

// dialNetns connects to addr from inside the network namespace ns.
func dialNetns(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// listenNetns listens on addr inside the network namespace ns.
func listenNetns(ns, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNetns(ns, func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// inNetns runs f on a thread that entered the network namespace ns, so
// that the sockets f makes live there (and stay there after). The thread
// then goes back or, if it cannot, ends with its goroutine rather than
// serve others.
func inNetns(ns string, f func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		entered := false
		err := func() error {
			self, err := os.Open("/proc/thread-self/ns/net")
			if err != nil {
				return err
			}
			defer self.Close()
			target, err := os.Open(filepath.Join("/run/netns", ns))
			if err != nil {
				return err
			}
			defer target.Close()
			if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("setns %s: %w", ns, err)
			}
			entered = true
			err = f()
			if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
				entered = false
			}
			return err
		}()
		if !entered {
			runtime.UnlockOSThread()
		}
		ch <- err
	}()
	return <-ch
}
