package memory

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
	"github.com/expertd/expertd/compress/synth"
	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
)

var outDir = flag.String("out", "", "write memory.md into this directory (without it TestMemory is skipped)")

const (
	// expertParams at density 2/3 (the density with the most bits per
	// parameter, about 1.6) make a container of about 100 MiB.
	expertParams  = 500 << 20
	expertDensity = "0.6667"

	settle      = 10 * time.Second      // idle time after B connected, before the idle reading
	period      = 20 * time.Millisecond // RSS sampling period during the fetch
	fetchBudget = 5 * time.Minute
)

// TestMemory measures the idle RSS of two daemon processes A and B (B
// bootstrapped to A), then B's and A's RSS while B fetches a 100 MiB expert
// published on A, and writes the table to -out/memory.md.
func TestMemory(t *testing.T) {
	if *outDir == "" {
		t.Skip("measures daemon memory only when given -out DIR")
	}
	ctx := context.Background()
	root := t.TempDir()
	bin := buildBinary(t)
	// The expert is made first, so its CPU load is over before the daemons
	// start.
	container, size := makeExpert(t, bin, root)

	a := startDaemon(t, bin, root, "a", "")
	b := startDaemon(t, bin, root, "b", a.Addr)
	idA, err := a.Client().Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitPeer(t, b, idA.ID)
	time.Sleep(settle)
	var r result
	r.idleA, r.idleB = readMem(t, a), readMem(t, b)
	t.Logf("idle after %v: A %s, B %s", settle, mb(r.idleA.RSS), mb(r.idleB.RSS))

	e, err := a.Client().Publish(ctx, api.PublishRequest{Path: container, Name: "memory-100mib"})
	if err != nil {
		t.Fatalf("publish on A: %v", err)
	}
	if e.Size != size {
		t.Fatalf("A published %d bytes, the container has %d", e.Size, size)
	}
	testutil.Eventually(t, 30*time.Second, "B to learn of "+e.CID, func() bool {
		es, err := b.Client().Experts(ctx, api.Filter{Remote: true})
		return err == nil && slices.ContainsFunc(es, func(x api.Expert) bool { return x.CID == e.CID })
	})
	time.Sleep(2 * time.Second) // let A's publish work settle
	r.preA, r.preB = readMem(t, a), readMem(t, b)

	s := startSampler(period, pid(a), pid(b))
	start := time.Now()
	tr, err := b.Client().StartFetch(ctx, e.CID)
	if err != nil {
		t.Fatalf("fetch on B: %v", err)
	}
	deadline := start.Add(fetchBudget)
	for tr.State == api.StateRunning {
		if time.Now().After(deadline) {
			t.Fatalf("fetch still running after %v: %d of %d bytes", fetchBudget, tr.Bytes, tr.Total)
		}
		time.Sleep(50 * time.Millisecond)
		if tr, err = b.Client().Transfer(ctx, e.CID); err != nil {
			t.Fatal(err)
		}
	}
	r.fetchTime = time.Since(start)
	time.Sleep(500 * time.Millisecond) // what follows a fetch (announce, provide) counts too
	peaks, samples, err := s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if tr.State != api.StateDone || tr.Bytes != uint64(size) {
		t.Fatalf("fetch ended %s with %d of %d bytes: %s", tr.State, tr.Bytes, size, tr.Error)
	}
	r.endA, r.endB = readMem(t, a), readMem(t, b)
	r.peakA = fetchPeak(peaks[pid(a)], r.preA, r.endA)
	r.peakB = fetchPeak(peaks[pid(b)], r.preB, r.endB)
	r.samples, r.size = samples, size
	t.Logf("fetched %d bytes in %v, %d samples", size, r.fetchTime.Round(time.Millisecond), samples)

	// What `expertd fetch CID -o DIR` does next: write the expert as a PEFT
	// directory (2 GiB of F32 here).
	s = startSampler(period, pid(b))
	start = time.Now()
	dir := filepath.Join(root, "materialized")
	if _, err := b.Client().Materialize(ctx, e.CID, api.MaterializeRequest{Dir: dir}); err != nil {
		t.Fatalf("materialize on B: %v", err)
	}
	r.matTime = time.Since(start)
	if peaks, _, err = s.Stop(); err != nil {
		t.Fatal(err)
	}
	r.matB = fetchPeak(peaks[pid(b)], r.endB, readMem(t, b))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for _, l := range r.lines() {
		t.Log(l)
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(*outDir, "memory.md")
	if err := os.WriteFile(out, []byte(r.markdown()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", out)
}

// makeExpert writes a synthetic F32 LoRA adapter of expertParams parameters
// and compresses it with `expertd compress` at expertDensity; it returns
// the container's path and size. The adapter itself (2 GiB) is removed.
func makeExpert(t *testing.T, bin, root string) (string, int64) {
	t.Helper()
	start := time.Now()
	src := filepath.Join(root, "synthetic-lora")
	if err := synth.WriteLoRA(src, expertParams, 7); err != nil {
		t.Fatalf("write synthetic adapter: %v", err)
	}
	container := filepath.Join(root, "expert.cpeft")
	out := daemontest.Run(t, bin, root, "compress", src, "-o", container, "--density", expertDensity)
	t.Log(out[strings.LastIndexByte(out, '\n')+1:]) // the summary, not the progress lines
	if err := os.RemoveAll(src); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(container)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("expert: %d bytes (%.1f MiB), made in %v", st.Size(), float64(st.Size())/(1<<20), time.Since(start).Round(time.Second))
	return container, st.Size()
}

func readMem(t *testing.T, d *daemon) procMem {
	t.Helper()
	m, err := readProcMem(pid(d))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fetchPeak is the peak RSS during the fetch: the largest sample, or the
// kernel's high-water mark if the fetch raised it (a peak between samples).
func fetchPeak(sampled int64, before, after procMem) int64 {
	if after.HWM > before.HWM {
		return max(sampled, after.HWM)
	}
	return sampled
}
