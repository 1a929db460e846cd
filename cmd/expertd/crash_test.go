package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/compress/synth"
	"github.com/expertd/expertd/node/api"
)

// TestKill9DuringPublishAndFetch kills real daemon processes with SIGKILL
// in the middle of a publish and of a fetch: after each kill the store
// verifies clean (no partial object under a real name), and after a restart
// the publish and the fetch complete.
func TestKill9DuringPublishAndFetch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills daemon processes")
	}
	root := t.TempDir()
	bin := buildBinary(t)
	adapter := filepath.Join(root, "adapter")
	// 96 MB of F32; about 4.5 MB compressed at d=0.5.
	if err := synth.WriteLoRA(adapter, 24<<20, 1); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string { return runBin(t, bin, root, args...) }
	verify := func(d *daemon) {
		t.Helper()
		out, err := runBinErr(bin, root, "verify", "--data-dir", d.Dir)
		if err != nil {
			t.Fatalf("%s: store does not verify after kill -9: %v", d.Name, err)
		}
		t.Logf("%s verify: %s", d.Name, strings.ReplaceAll(out, "\n", "; "))
	}

	a := startDaemon(t, bin, root, "a", "")
	pub := make(chan error, 1)
	go func() {
		_, err := runBinErr(bin, root, "publish", adapter, "--density", "0.5", "--api", a.API)
		pub <- err
	}()
	time.Sleep(300 * time.Millisecond) // reading and compressing 96 MB takes longer
	a.Kill9(t)
	<-pub
	verify(a)
	args := a.Cmd.Args[1:]
	a.Restart(t, bin, root, args)
	cid := cli("publish", adapter, "--density", "0.5", "--api", a.API)

	b := startDaemon(t, bin, root, "b", a.Addr)
	waitRemote(t, bin, root, b, cid)
	c := api.NewClient(b.API, "")
	if _, err := c.StartFetch(t.Context(), cid); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if tr, err := c.Transfer(t.Context(), cid); err == nil && (tr.Bytes > 0 || tr.State != api.StateRunning) {
			t.Logf("killing b at %d of %d bytes (%s)", tr.Bytes, tr.Total, tr.State)
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Kill9(t)
	verify(b)
	b.Restart(t, bin, root, b.Cmd.Args[1:])
	out := filepath.Join(root, "fetched")
	cli("fetch", cid, "-o", out, "--api", b.API)
	if _, err := os.Stat(filepath.Join(out, "adapter_model.safetensors")); err != nil {
		t.Fatal(err)
	}
	verify2, err := runBinErr(bin, root, "ls", "--api", b.API)
	if err != nil || !strings.Contains(verify2, cid) {
		t.Fatalf("b does not list %s after the resumed fetch: %v\n%s", cid, err, verify2)
	}
}

func waitRemote(t *testing.T, bin, root string, d *daemon, cid string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		if out, err := runBinErr(bin, root, "ls", "--remote", "--api", d.API); err == nil && strings.Contains(out, cid) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never learnt of %s", d.Name, cid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
