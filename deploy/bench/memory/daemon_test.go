package memory

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/node/api"
)

// buildBinary builds cmd/expertd into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "expertd")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/expertd")
	cmd.Dir = "../../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// daemon is an `expertd daemon` process.
type daemon struct {
	name, api, addr string
	cmd             *exec.Cmd
	client          *api.Client
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// startDaemon starts `expertd daemon` with its own data dir under root, a
// loopback API and TCP listen address, mDNS off, bootstrapping to boot if
// set, and waits for its API.
func startDaemon(t *testing.T, bin, root, name, boot string) *daemon {
	t.Helper()
	d := &daemon{name: name, api: freeAddr(t)}
	args := []string{"daemon", "--data-dir", filepath.Join(root, name), "--api", d.api, "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", freePort(t))}
	if boot != "" {
		args = append(args, "--bootstrap", boot)
	}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Env = append(os.Environ(), "EXPERTD_P2P_MDNS=false", "XDG_CONFIG_HOME="+root)
	logf, err := os.Create(filepath.Join(root, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = d.cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", name, b)
		}
	})
	d.client = api.NewClient(d.api, "")
	id := waitIdentity(t, d.client)
	for _, a := range id.Addrs {
		if strings.Contains(a, "/tcp/") {
			d.addr = a
		}
	}
	if d.addr == "" {
		t.Fatalf("%s has no TCP address in %v", name, id.Addrs)
	}
	return d
}

// waitPeer waits until d is connected to the peer id.
func (d *daemon) waitPeer(t *testing.T, id string) {
	t.Helper()
	eventually(t, 30*time.Second, d.name+" connected to "+id, func() bool {
		ps, err := d.client.Peers(context.Background())
		if err != nil {
			return false
		}
		for _, p := range ps {
			if p.ID == id {
				return true
			}
		}
		return false
	})
}

// runBin runs an expertd command and returns its trimmed stdout.
func runBin(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("expertd %v: %v\n%s%s", args, err, out.String(), errb.String())
	}
	return strings.TrimSpace(out.String() + errb.String())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitIdentity(t *testing.T, c *api.Client) api.Identity {
	t.Helper()
	var id api.Identity
	eventually(t, 30*time.Second, "daemon API", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var err error
		id, err = c.Identity(ctx)
		return err == nil
	})
	return id
}

// eventually polls cond every 100 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
