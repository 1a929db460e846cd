package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/compress/safetensors"
	"github.com/expertd/expertd/node/api"
)

// writeBigAdapter writes a synthetic F32 LoRA adapter of n parameters.
func writeBigAdapter(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := `{"peft_type":"LORA","r":16,"lora_alpha":32,"target_modules":["q","v"],"base_model_name_or_path":"synthetic"}`
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	const per = 1 << 20
	var infos []safetensors.TensorInfo
	for i := 0; i*per < n; i++ {
		infos = append(infos, safetensors.TensorInfo{Name: "base_model.model.layers." + string(rune('a'+i/26)) + string(rune('a'+i%26)) + ".lora_A.weight", DType: "F32", Shape: []int64{16, per / 16}})
	}
	f, err := os.Create(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := safetensors.NewWriter(f, map[string]string{"format": "pt"}, infos)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]float32, per)
	for range infos {
		for j := range vals {
			vals[j] = float32(rng.NormFloat64() * 0.02)
		}
		if err := w.WriteFloat32(vals); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

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
	writeBigAdapter(t, adapter, 24<<20) // 96 MB of F32; about 4.5 MB compressed at d=0.5
	cli := func(args ...string) string { return runBin(t, bin, root, args...) }
	verify := func(d *daemon) {
		t.Helper()
		out, err := runBinErr(bin, root, "verify", "--data-dir", filepath.Join(d.dir, "store"))
		if err != nil {
			t.Fatalf("%s: store does not verify after kill -9: %v", d.name, err)
		}
		t.Logf("%s verify: %s", d.name, strings.ReplaceAll(out, "\n", "; "))
	}

	a := startDaemon(t, bin, root, "a", "")
	pub := make(chan error, 1)
	go func() {
		_, err := runBinErr(bin, root, "publish", adapter, "--density", "0.5", "--api", a.api)
		pub <- err
	}()
	time.Sleep(300 * time.Millisecond) // reading and compressing 96 MB takes longer
	a.kill9(t)
	<-pub
	verify(a)
	args := a.cmd.Args[1:]
	a.start(t, bin, root, args)
	cid := cli("publish", adapter, "--density", "0.5", "--api", a.api)

	b := startDaemon(t, bin, root, "b", a.addr)
	waitRemote(t, bin, root, b, cid)
	c := api.NewClient(b.api, "")
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
	b.kill9(t)
	verify(b)
	b.start(t, bin, root, b.cmd.Args[1:])
	out := filepath.Join(root, "fetched")
	cli("fetch", cid, "-o", out, "--api", b.api)
	if _, err := os.Stat(filepath.Join(out, "adapter_model.safetensors")); err != nil {
		t.Fatal(err)
	}
	verify2, err := runBinErr(bin, root, "ls", "--api", b.api)
	if err != nil || !strings.Contains(verify2, cid) {
		t.Fatalf("b does not list %s after the resumed fetch: %v\n%s", cid, err, verify2)
	}
}

func waitRemote(t *testing.T, bin, root string, d *daemon, cid string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		if out, err := runBinErr(bin, root, "ls", "--remote", "--api", d.api); err == nil && strings.Contains(out, cid) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never learnt of %s", d.name, cid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
