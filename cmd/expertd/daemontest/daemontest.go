// Package daemontest runs expertd daemon processes for end-to-end tests
// and benchmarks: the binary built once per test process, every daemon with
// its own data dir, a loopback API and TCP port, mDNS off, its log in a
// file shown when the test fails.
package daemontest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Build builds cmd/expertd once per test process and returns its path;
// call Clean from TestMain to remove it.
func Build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "expertd-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "expertd")
		if out, err := exec.Command("go", "build", "-o", buildPath, "github.com/expertd/expertd/cmd/expertd").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Clean removes what Build built.
func Clean() {
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
}

// Daemon is an `expertd daemon` process.
type Daemon struct {
	Name string
	Dir  string // its data dir
	API  string // host:port of its API
	Addr string // its TCP multiaddr with /p2p/
	Cmd  *exec.Cmd
	Opts Options
	log  *os.File
}

// Options are how a daemon runs beyond its name and bootstrap peer.
type Options struct {
	// LogLevel is EXPERTD_LOG_LEVEL; empty: debug. A test that floods a
	// daemon runs it at info: logging the flood at debug costs more than
	// the flood.
	LogLevel string
	Env      []string // added to its environment
}

// Start starts `expertd daemon` named name with its data dir under root, a
// free loopback API address and TCP port, bootstrapping to boot if set, and
// waits for its API. It is stopped (SIGINT, then SIGKILL) when the test ends.
func Start(t *testing.T, bin, root, name, boot string) *Daemon {
	t.Helper()
	return StartWith(t, bin, root, name, boot, Options{})
}

// StartWith is Start with o.
func StartWith(t *testing.T, bin, root, name, boot string, o Options) *Daemon {
	t.Helper()
	d := &Daemon{Name: name, Dir: filepath.Join(root, name), API: testutil.FreeAddr(t), Opts: o}
	args := []string{"daemon", "--data-dir", d.Dir, "--api", d.API, "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", testutil.FreePort(t))}
	if boot != "" {
		args = append(args, "--bootstrap", boot)
	}
	d.Restart(t, bin, root, args)
	return d
}

// logTail is how much of a daemon's log a failed test shows: its end.
const logTail = 256 << 10

// Restart runs the daemon anew with args (those of Cmd after a Kill9,
// say) and waits for its API.
func (d *Daemon) Restart(t *testing.T, bin, root string, args []string) {
	t.Helper()
	level := d.Opts.LogLevel
	if level == "" {
		level = "debug"
	}
	d.Cmd = exec.Command(bin, args...)
	d.Cmd.Env = append(os.Environ(), "EXPERTD_P2P_MDNS=false", "XDG_CONFIG_HOME="+root, "EXPERTD_LOG_LEVEL="+level)
	d.Cmd.Env = append(d.Cmd.Env, d.Opts.Env...)
	var err error
	if d.log, err = os.OpenFile(filepath.Join(root, d.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		t.Fatal(err)
	}
	d.Cmd.Stdout, d.Cmd.Stderr = d.log, d.log
	if err := d.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, logf := d.Cmd, d.log
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			Stop(cmd, os.Interrupt)
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > logTail {
				b = b[len(b)-logTail:]
			}
			t.Logf("%s log (its last %d KiB at most):\n%s", d.Name, logTail>>10, b)
		}
	})
	id := WaitIdentity(t, d.Client())
	for _, a := range id.Addrs {
		if strings.Contains(a, "/tcp/") {
			d.Addr = a
		}
	}
	if d.Addr == "" {
		t.Fatalf("%s has no TCP address in %v", d.Name, id.Addrs)
	}
}

// Stop sends sig to the started process cmd runs and waits for it; if it
// has not exited after 10 s, it kills it (SIGKILL).
func Stop(cmd *exec.Cmd, sig os.Signal) {
	_ = cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Client is an API client of the daemon.
func (d *Daemon) Client() *api.Client { return api.NewClient(d.API, "") }

// Kill9 kills the daemon with SIGKILL and waits for it.
func (d *Daemon) Kill9(t *testing.T) {
	t.Helper()
	if err := d.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = d.Cmd.Wait()
}

// Run runs an expertd command (XDG_CONFIG_HOME=root) and returns its
// trimmed stdout; a failure fails the test.
func Run(t *testing.T, bin, root string, args ...string) string {
	t.Helper()
	out, err := RunErr(bin, root, args...)
	if err != nil {
		t.Fatalf("expertd %v: %v", args, err)
	}
	return out
}

// RunErr is Run returning the error, with the command's output in it.
func RunErr(bin, root string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+root)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%w\n%s%s", err, out.String(), errb.String())
	}
	return strings.TrimSpace(out.String()), nil
}

// WaitIdentity waits up to 30 s for the API behind c to answer.
func WaitIdentity(t testing.TB, c *api.Client) api.Identity {
	t.Helper()
	var id api.Identity
	testutil.Eventually(t, 30*time.Second, "the daemon's API", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var err error
		id, err = c.Identity(ctx)
		return err == nil
	})
	return id
}
