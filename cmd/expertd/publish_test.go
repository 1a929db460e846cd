package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
	"github.com/expertd/expertd/internal/testutil"
)

// TestPublishChecksFirst: publish refuses bad options and an unreachable
// daemon before it reads the adapter, and where it cannot make a temporary
// file (a scratch image has no /tmp) the daemon compresses the directory.
func TestPublishChecksFirst(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon process")
	}
	bin := daemontest.Build(t)
	root := t.TempDir()
	fixture, _ := filepath.Abs("../../compress/testdata/peft/python-lora-r16")
	publish := func(env []string, args ...string) (string, string, error) {
		cmd := exec.Command(bin, append([]string{"publish", fixture}, args...)...)
		cmd.Env = append(cmd.Environ(), append(env, "XDG_CONFIG_HOME="+root)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return strings.TrimSpace(out.String()), errb.String(), err
	}
	if _, stderr, err := publish(nil, "--density", "2", "--api", testutil.FreeAddr(t)); err == nil || !strings.Contains(stderr, "density") {
		t.Fatalf("bad density: %v\n%s", err, stderr)
	}
	if _, stderr, err := publish(nil, "--api", testutil.FreeAddr(t)); err == nil || !strings.Contains(stderr, "cannot reach the expertd daemon") {
		t.Fatalf("no daemon: %v\n%s", err, stderr)
	}
	d := daemontest.Start(t, bin, root, "a", "")
	out, stderr, err := publish([]string{"TMPDIR=" + filepath.Join(root, "missing")}, "--name", "python", "--api", d.API)
	if err != nil || !strings.HasPrefix(out, "baf") {
		t.Fatalf("publish without a temporary directory: %v\n%s%s", err, out, stderr)
	}
	if !strings.Contains(stderr, "the daemon compresses it") {
		t.Errorf("stderr does not say who compressed it:\n%s", stderr)
	}
	// A relative path is the caller's, not the daemon's: the CLI sends it
	// made absolute (here the daemon reads it: no temporary directory).
	rel := exec.Command(bin, "publish", filepath.Base(fixture), "--name", "python", "--api", d.API)
	rel.Dir = filepath.Dir(fixture)
	rel.Env = append(rel.Environ(), "XDG_CONFIG_HOME="+root, "TMPDIR="+filepath.Join(root, "missing"))
	if got, err := rel.Output(); err != nil || strings.TrimSpace(string(got)) != out {
		t.Fatalf("publish of a relative path: %v\n%s", err, got)
	}
}
