package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
	"github.com/expertd/expertd/internal/testutil"
)

// TestStartupErrors: ordinary mistakes when starting a daemon (a second
// daemon on the same data dir, an API or p2p port in use, a listen address
// given twice) end in one line that names the problem and exit 1, never a
// panic; and a second daemon cannot share the first one's p2p port.
func TestStartupErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts daemon processes")
	}
	bin := daemontest.Build(t)
	root := t.TempDir()
	a := daemontest.Start(t, bin, root, "a", "")
	port := strings.Split(a.Addr, "/")[4] // /ip4/127.0.0.1/tcp/PORT/p2p/ID

	free := func() []string {
		return []string{"--api", testutil.FreeAddr(t), "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", testutil.FreePort(t))}
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"same data dir", append([]string{"--data-dir", a.Dir}, free()...),
			fmt.Sprintf("data directory %s is in use by process %d", a.Dir, a.Cmd.Process.Pid)},
		{"API address in use", []string{"--data-dir", filepath.Join(root, "b"), "--api", a.API, "--listen", "/ip4/127.0.0.1/tcp/0"},
			"API address " + a.API + " is in use"},
		{"p2p port in use", []string{"--data-dir", filepath.Join(root, "c"), "--api", testutil.FreeAddr(t), "--listen", "/ip4/127.0.0.1/tcp/" + port},
			"p2p listen address /ip4/127.0.0.1/tcp/" + port + " is in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runDaemon(t, bin, root, tc.args...)
			if code != 1 || strings.Contains(out, "panic") || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit 1 and %q", code, out, tc.want)
			}
			if lines := strings.Count(strings.TrimSpace(out), "\n") + 1; lines != 1 {
				t.Errorf("%d lines of output, want one:\n%s", lines, out)
			}
		})
	}

	// A QUIC address given twice is used once (libp2p panics on it).
	udp := strconv.Itoa(testutil.FreePort(t))
	quic := "/ip4/127.0.0.1/udp/" + udp + "/quic-v1"
	d := &daemontest.Daemon{Name: "twice", Dir: filepath.Join(root, "twice"), API: testutil.FreeAddr(t)}
	d.Restart(t, bin, root, []string{"daemon", "--data-dir", d.Dir, "--api", d.API,
		"--listen", quic + "," + quic + ",/ip4/127.0.0.1/tcp/0"})
}

// runDaemon runs `expertd daemon args...` expected to fail at start and
// returns its combined output and exit code.
func runDaemon(t *testing.T, bin, root string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"daemon"}, args...)...)
	cmd.Env = append(cmd.Environ(), "XDG_CONFIG_HOME="+root, "EXPERTD_P2P_MDNS=false", "EXPERTD_LOG_LEVEL=error")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("daemon %v did not fail at start (%v):\n%s", args, err, out)
	}
	return string(out), exit.ExitCode()
}
