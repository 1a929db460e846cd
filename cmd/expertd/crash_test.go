package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
	// Compressing 96 MB takes a while; the kill must land once the store
	// has blocks of the container and before it indexes it.
	killMidWrite(t, a, "publish", pub, func(st storeFiles) bool { return st.blocks > 0 })
	<-pub
	verify(a)
	args := a.Cmd.Args[1:]
	a.Restart(t, bin, root, args)
	cid := cli("publish", adapter, "--density", "0.5", "--api", a.API)

	b := startDaemon(t, bin, root, "b", a.Addr)
	waitRemote(t, bin, root, b, cid)
	if e, err := a.Client().Expert(t.Context(), cid); err == nil {
		t.Logf("fetching %s: %d bytes", cid, e.Size)
	}
	c := api.NewClient(b.API, "")
	if _, err := c.StartFetch(t.Context(), cid); err != nil {
		t.Fatal(err)
	}
	// The kill must land once b has stored a whole leaf (1 MiB) and before
	// the fetch completes.
	killMidWrite(t, b, "fetch", nil, func(st storeFiles) bool { return st.bytes >= 1<<20 })
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

// killMidWrite kills d with SIGKILL in the middle of an operation (what)
// that writes an expert to its store: once its store on disk satisfies
// started, and before the expert is indexed. It polls the store every
// millisecond, stops d with SIGSTOP as soon as started holds, so the disk
// holds still while it checks that no index entry is there, then kills
// it. It fails the test if the operation ends first (ended, if not nil,
// says so), if the expert was indexed already, or after a minute.
func killMidWrite(t *testing.T, d *daemon, what string, ended <-chan error, started func(storeFiles) bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !started(listStore(t, d.Dir)); time.Sleep(time.Millisecond) {
		select {
		case err := <-ended:
			t.Fatalf("%s: the %s ended before it stored anything (%v)", d.Name, what, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the %s stored nothing in a minute", d.Name, what)
		}
	}
	if err := d.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	st := listStore(t, d.Dir)
	if len(st.entries) > 0 {
		t.Fatalf("%s: the kill would land after the %s indexed its expert (%d blocks, entries %v), not in its middle", d.Name, what, st.blocks, st.entries)
	}
	t.Logf("killing %s mid-%s: %d blocks (%d bytes) stored, no index entry", d.Name, what, st.blocks, st.bytes)
	d.Kill9(t)
}

// storeFiles is what a daemon's store holds on disk.
type storeFiles struct {
	blocks  int   // block files, temporary ones not counted
	bytes   int64 // their size
	entries []string
}

// listStore lists the block files and index entries under a daemon's data
// dir.
func listStore(t *testing.T, dataDir string) storeFiles {
	t.Helper()
	var st storeFiles
	dir := filepath.Join(dataDir, "store")
	err := filepath.WalkDir(filepath.Join(dir, "blocks"), func(path string, e fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil // not created yet, or a temporary file renamed meanwhile
		case err != nil:
			return err
		case e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".tmp-"):
			if fi, err := e.Info(); err == nil {
				st.blocks++
				st.bytes += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st.entries, _ = filepath.Glob(filepath.Join(dir, "experts", "*.json"))
	return st
}
