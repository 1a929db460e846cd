package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
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
			boot = ds[i-1].Addr
		}
		ds = append(ds, startDaemon(t, bin, root, fmt.Sprintf("node%d", i), boot))
	}
	cli := func(args ...string) string { return runBin(t, bin, root, args...) }
	fixture, _ := filepath.Abs("../../compress/testdata/peft/python-lora-r16")
	cid := cli("publish", fixture, "--name", "python", "--api", ds[0].API)
	if !strings.HasPrefix(cid, "baf") {
		t.Fatalf("publish printed %q", cid)
	}
	// The third node learns of it through gossip.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(cli("ls", "--remote", "--api", ds[2].API), cid) {
		if time.Now().After(deadline) {
			t.Fatalf("node 2 never saw %s", cid)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out := filepath.Join(root, "fetched")
	cli("fetch", cid, "-o", out, "--api", ds[2].API)
	// Again into the same directory, which now holds files: only with --force.
	if _, err := runBinErr(bin, root, "fetch", cid, "-o", out, "--api", ds[2].API); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("fetch -o into a directory holding files: %v", err)
	}
	cli("fetch", cid, "-o", out, "--force", "--api", ds[2].API)

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

// The daemon processes and the CLI runs of these tests (daemontest).
type daemon = daemontest.Daemon

var (
	startDaemon = daemontest.Start
	runBin      = daemontest.Run
	runBinErr   = daemontest.RunErr
)

func buildBinary(t *testing.T) string { return daemontest.Build(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	daemontest.Clean()
	os.Exit(code)
}
