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
	bin := filepath.Join(root, "bin", "expertd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	type daemon struct{ api, id string }
	var ds []daemon
	for i := range 3 {
		apiAddr := freeAddr(t)
		p2pPort := freePort(t)
		args := []string{"daemon", "--data-dir", filepath.Join(root, fmt.Sprintf("node%d", i)),
			"--api", apiAddr, "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p2pPort)}
		if i > 0 {
			args = append(args, "--bootstrap", ds[i-1].id)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "EXPERTD_P2P_MDNS=false", "EXPERTD_P2P_DHT_PRIVATE_ADDRS=true",
			"XDG_CONFIG_HOME="+root, "EXPERTD_LOG_LEVEL=debug")
		logf, err := os.Create(filepath.Join(root, fmt.Sprintf("node%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
			}
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("node%d log:\n%s", i, b)
			}
		})
		c := api.NewClient(apiAddr, "")
		id := waitIdentity(t, c)
		var full string
		for _, a := range id.Addrs {
			if strings.Contains(a, "/tcp/") {
				full = a
			}
		}
		ds = append(ds, daemon{api: apiAddr, id: full})
	}

	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+root)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("expertd %v: %v\n%s%s", args, err, out.String(), errb.String())
		}
		return strings.TrimSpace(out.String())
	}
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
