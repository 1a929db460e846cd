package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/expertd/expertd/node/api"
)

// TestEndToEnd runs the README's demo as a user would: it builds the
// binary, starts three daemons as separate processes on 127.0.0.1 (each
// bootstrapping to the previous one, mDNS off), publishes a fixture adapter
// on the first, runs `expertd fetch CID -o DIR` on the third and compares
// the result with `expertd decompress` of the same container.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts three daemons")
	}
	root := t.TempDir()
	bin := buildBinary(t)
	var ds []*daemon
	for i := range 3 {
		var boot string
		if i > 0 {
			boot = ds[i-1].addr
		}
		ds = append(ds, startDaemon(t, bin, root, fmt.Sprintf("node%d", i), boot))
	}
	cli := func(args ...string) string { return runBin(t, bin, root, args...) }
	fixture, _ := filepath.Abs("../../compress/testdata/peft/python-lora-r16")
	cid := cli("publish", fixture, "--name", "python", "--api", ds[0].api)
	if !strings.HasPrefix(cid, "baf") {
		t.Fatalf("publish printed %q", cid)
	}
	// The third node learns of it through gossip.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(cli("ls", "--remote", "--api", ds[2].api), cid) {
		if time.Now().After(deadline) {
			t.Fatalf("node 2 never saw %s", cid)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out := filepath.Join(root, "fetched")
	cli("fetch", cid, "-o", out, "--api", ds[2].api)

	// The reference: decompress of the same container, compressed with the
	// daemon's defaults.
	container := filepath.Join(root, "ref.cpeft")
	cli("compress", fixture, "-o", container)
	if got := cli("cid", container); got != cid {
		t.Fatalf("offline compress gives %s, the daemon published %s", got, cid)
	}
	ref := filepath.Join(root, "ref")
	cli("decompress", container, "-o", ref)
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		a, err1 := os.ReadFile(filepath.Join(out, f))
		b, err2 := os.ReadFile(filepath.Join(ref, f))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs from expertd decompress (%v %v)", f, err1, err2)
		}
	}
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// buildBinary builds expertd once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "expertd-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "expertd")
		if out, err := exec.Command("go", "build", "-o", buildPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
	os.Exit(code)
}

// daemon is an expertd daemon process.
type daemon struct {
	name, dir, api, addr string
	cmd                  *exec.Cmd
	logf                 *os.File
}

// startDaemon starts `expertd daemon` with its own data dir, API port and
// loopback TCP port, bootstrapping to boot if set, mDNS off.
func startDaemon(t *testing.T, bin, root, name, boot string) *daemon {
	t.Helper()
	d := &daemon{name: name, dir: filepath.Join(root, name), api: freeAddr(t)}
	port := freePort(t)
	args := []string{"daemon", "--data-dir", d.dir, "--api", d.api, "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}
	if boot != "" {
		args = append(args, "--bootstrap", boot)
	}
	d.start(t, bin, root, args)
	return d
}

func (d *daemon) start(t *testing.T, bin, root string, args []string) {
	t.Helper()
	d.cmd = exec.Command(bin, args...)
	d.cmd.Env = append(os.Environ(), "EXPERTD_P2P_MDNS=false", "XDG_CONFIG_HOME="+root, "EXPERTD_LOG_LEVEL=debug")
	var err error
	if d.logf, err = os.OpenFile(filepath.Join(root, d.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd.Stdout, d.cmd.Stderr = d.logf, d.logf
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, logf := d.cmd, d.logf
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
			}
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", d.name, b)
		}
	})
	id := waitIdentity(t, api.NewClient(d.api, ""))
	for _, a := range id.Addrs {
		if strings.Contains(a, "/tcp/") {
			d.addr = a
		}
	}
}

// kill9 kills the daemon with SIGKILL and waits for it.
func (d *daemon) kill9(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	d.cmd.Wait()
}

// runBin runs an expertd command and returns its trimmed stdout.
func runBin(t *testing.T, bin, root string, args ...string) string {
	t.Helper()
	out, err := runBinErr(bin, root, args...)
	if err != nil {
		t.Fatalf("expertd %v: %v", args, err)
	}
	return out
}

func runBinErr(bin, root string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+root)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%w\n%s%s", err, out.String(), errb.String())
	}
	return strings.TrimSpace(out.String()), nil
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		id, err := c.Identity(ctx)
		cancel()
		if err == nil {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
