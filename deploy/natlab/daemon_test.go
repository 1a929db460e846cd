package natlab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
	"github.com/expertd/expertd/node/api"
)

// apiPort is where every daemon's API listens, on 127.0.0.1 of its own
// namespace; the test reaches it through dialNetns.
const apiPort = "5180"

// useNetnsTransport makes http.DefaultTransport (which api.Client uses)
// dial a host named after a namespace of the lab inside that namespace:
// http://<namespace>:5180 is that namespace's daemon.
func useNetnsTransport() {
	var d net.Dialer
	http.DefaultTransport = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err == nil && strings.HasPrefix(host, nsPrefix) {
				return dialNetns(ctx, host, network, net.JoinHostPort("127.0.0.1", port))
			}
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 4,
	}
}

// daemon is an `expertd daemon` process in a namespace.
type daemon struct {
	name, ns string
	bin      string
	config   string // its configuration file
	logPath  string
	cmd      *exec.Cmd
}

// nodeConfig is what differs between the lab's daemons.
type nodeConfig struct {
	bootstrap, relays, announce []string
	dhtServer                   bool
	relayService                string // the p2p.relay_service section's keys, "" for none
}

// yaml is the daemon's configuration file. Its API is called as
// http://<namespace>:5180, so the namespace's name is an allowed Host.
func (c nodeConfig) yaml(dataDir, ns string) string {
	list := func(l []string) string { return "[" + strings.Join(l, ", ") + "]" }
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\ndata_dir: %s\nlog:\n  level: debug\napi:\n  listen: 127.0.0.1:%s\n  allowed_hosts: [%s]\n", dataDir, apiPort, ns)
	fmt.Fprintf(&b, "p2p:\n  listen: [/ip4/0.0.0.0/tcp/%s, /ip4/0.0.0.0/udp/%s/quic-v1]\n  mdns: false\n  nat_port_map: false\n", p2pPort, p2pPort)
	fmt.Fprintf(&b, "  bootstrap: %s\n  relays: %s\n  append_announce: %s\n", list(c.bootstrap), list(c.relays), list(c.announce))
	if c.dhtServer {
		b.WriteString("  dht:\n    mode: server\n")
	}
	if c.relayService != "" {
		b.WriteString("  relay_service:\n" + c.relayService)
	}
	return b.String()
}

// startDaemon starts expertd in the namespace ns with configuration c,
// its files under dir, and waits for its API. It is stopped (SIGINT, then
// SIGKILL) when the test ends, its log shown if the test failed.
func startDaemon(t *testing.T, bin, ns, dir, name string, c nodeConfig) *daemon {
	t.Helper()
	d := &daemon{name: name, ns: ns, bin: bin, config: filepath.Join(dir, name+".yaml"), logPath: filepath.Join(dir, name+".log")}
	if err := os.WriteFile(d.config, []byte(c.yaml(filepath.Join(dir, name), ns)), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command("ip", "netns", "exec", ns, bin, "daemon", "--config", d.config)
	d.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "GOLOG_LOG_LEVEL=error")
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		daemontest.Stop(d.cmd, syscall.SIGINT) // ip netns exec execs the daemon: same process
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(d.logPath)
			t.Logf("%s (%s) log:\n%s", d.name, d.ns, b)
		}
	})
	daemontest.WaitIdentity(t, d.client())
	return d
}

func (d *daemon) client() *api.Client { return api.NewClient("http://"+d.ns+":"+apiPort, "") }

func (d *daemon) identity(t *testing.T) api.Identity {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := d.client().Identity(ctx)
	if err != nil {
		t.Fatalf("%s: %v", d.name, err)
	}
	return id
}

// cli runs an expertd command against the daemon, in its namespace, and
// returns its output.
func (d *daemon) cli(t *testing.T, args ...string) string {
	t.Helper()
	args = append([]string{"netns", "exec", d.ns, d.bin}, append(args, "--config", d.config)...)
	var out, errb bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: expertd %v: %v\n%s%s", d.name, args[4:], err, out.String(), errb.String())
	}
	return out.String()
}

// cpu is the CPU time the daemon has used (user and system).
func (d *daemon) cpu(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces), from 3 on:
	// utime and stime are fields 14 and 15, in clock ticks.
	_, rest, _ := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// logHas counts the lines of the daemon's log holding all of words.
func (d *daemon) logHas(t *testing.T, words ...string) int {
	t.Helper()
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			n++
		}
	}
	return n
}
