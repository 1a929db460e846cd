package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/compress/safetensors"
)

var (
	rssFlag = flag.Bool("rss", false, "run TestDecompressRSS: real decompress processes writing about 4 GiB (a minute or two)")
	rssBin  = flag.String("rss-bin", "", "with -rss: measure this expertd binary (an older build, say) instead of the tree's")
)

// rssBound is how far above a decompress of a tiny adapter the peak RSS of
// a decompress may go, whatever it writes.
const rssBound = 64 << 20

// TestDecompressRSS runs `expertd decompress` processes and compares their
// peak RSS (getrusage ru_maxrss) with that of a decompress of a tiny
// adapter ("idle"): a 1 GiB adapter of four 256 MiB tensors, as is and
// converted to BF16; a 512 MiB residual over a base read from disk; the
// 2 GiB container of zeros, which is under the default limit; and the
// 64 GiB one, refused before anything is written; and headers as large as
// the 16 MiB limit allows, of tensors or of config. Each stays within
// rssBound of idle. Run it with -rss (scripts/bench.sh does not).
func TestDecompressRSS(t *testing.T) {
	if !*rssFlag {
		t.Skip("needs -rss: writes about 4 GiB")
	}
	timeBin, err := exec.LookPath("time")
	if err != nil {
		t.Skip("needs GNU time (Debian package time)")
	}
	bin := *rssBin
	if bin == "" {
		bin = buildBinary(t)
	}
	dir := t.TempDir()
	run := func(args ...string) {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("expertd %v: %v\n%s", args, err, out)
		}
	}
	tiny := filepath.Join(dir, "tiny.cpeft")
	run("compress", "../../compress/testdata/peft/c-ia3", "-o", tiny)
	big := filepath.Join(dir, "big.cpeft")
	writeBigAdapter(t, big, 4, 1<<26)
	base, ft := filepath.Join(dir, "base"), filepath.Join(dir, "ft")
	writeModelPair(t, base, ft, 2, 1<<26)
	residual := filepath.Join(dir, "residual.cpeft")
	run("compress", ft, "--base", base, "-o", residual, "--density", "0.05")
	if err := os.RemoveAll(ft); err != nil {
		t.Fatal(err)
	}

	manyTensors, bigConfig := filepath.Join(dir, "tensors.cpeft"), filepath.Join(dir, "config.cpeft")
	writeHeaderBombs(t, manyTensors, bigConfig)

	idle := decompressRSS(t, timeBin, bin, dir, "idle: a 66 KB IA3 adapter", tiny, true)
	for _, c := range []struct {
		what string
		args []string
		ok   bool
	}{
		{"1 GiB LoRA, 4 tensors of 2^26 F32, d=0.01", []string{big}, true},
		{"the same written as BF16", []string{big, "--dtype", "bf16"}, true},
		{"512 MiB residual over a base on disk, d=0.05", []string{residual, "--base", base}, true},
		{"zeros-2gib.cpeft (211 B, 2 GiB of zeros), default limit", []string{filepath.Join(attacks, "zeros-2gib.cpeft")}, true},
		{"zeros-64gib.cpeft (267 B, 64 GiB declared)", []string{filepath.Join(attacks, "zeros-64gib.cpeft")}, false},
		{"the largest header: 170,000 tensors (1.1 MB)", []string{manyTensors}, true},
		{"a 15 MiB config (15 KB)", []string{bigConfig}, true},
	} {
		r := decompressRSS(t, timeBin, bin, dir, c.what, strings.Join(c.args, " "), c.ok)
		if r.rss > idle.rss+rssBound {
			t.Errorf("%s: peak RSS %d MiB, idle %d MiB: over idle + %d MiB", c.what, r.rss>>20, idle.rss>>20, rssBound>>20)
		}
	}
}

type rssResult struct{ rss, written int64 }

// decompressRSS runs `expertd decompress ARGS -o OUT` in a fresh OUT
// under GNU time, logs its peak RSS, the bytes it wrote and its time, and
// removes OUT. GNU time reports the RSS of the process it forks itself: a
// direct child of this test would inherit the test's own peak as its
// ru_maxrss (Linux records the pre-exec address space's high-water mark).
func decompressRSS(t *testing.T, timeBin, bin, dir, what, args string, ok bool) rssResult {
	t.Helper()
	out, rssFile := filepath.Join(dir, "out"), filepath.Join(dir, "rss")
	cmd := exec.Command(timeBin, append([]string{"-f", "%M", "-o", rssFile, bin, "decompress", "-o", out}, strings.Fields(args)...)...)
	start := time.Now()
	msg, err := cmd.CombinedOutput()
	took := time.Since(start)
	if (err == nil) != ok {
		t.Fatalf("%s: %v\n%s", what, err, msg)
	}
	var r rssResult
	b, rerr := os.ReadFile(rssFile)
	fields := strings.Fields(string(b)) // "Command exited with non-zero status 1" comes first on failure
	if rerr != nil || len(fields) == 0 {
		t.Fatalf("%s: no RSS from time (%v): %q", what, rerr, b)
	}
	kib, perr := strconv.ParseInt(fields[len(fields)-1], 10, 64)
	if perr != nil {
		t.Fatalf("%s: RSS %q: %v", what, b, perr)
	}
	r.rss = kib << 10
	filepath.Walk(out, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			r.written += fi.Size()
		}
		return nil
	})
	os.RemoveAll(out)
	result := "written"
	if err != nil {
		result = "refused: " + strings.TrimSpace(string(msg))
	}
	t.Logf("| %s | %.1f MiB | %d B | %v | %s |", what, float64(r.rss)/(1<<20), r.written, took.Round(10*time.Millisecond), result)
	return r
}

// writeBigAdapter writes a LoRA container of count F32 tensors of n
// elements, 1% of them nonzero, each compressed on its own (scope tensor).
func writeBigAdapter(t *testing.T, path string, count, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(51, 52))
	tau := make([]float32, n)
	var coded []compress.Coded
	for i := range count {
		clear(tau)
		for j := range tau {
			if rng.IntN(100) == 0 {
				tau[j] = float32(rng.NormFloat64() * 0.02)
			}
		}
		c, err := compress.Compress([]compress.Tensor{{Name: fmt.Sprintf("layers.%d.lora_A.weight", i), DType: "F32", Shape: []int64{16, int64(n / 16)}, Tau: tau}},
			compress.WithDensity(0.01), compress.WithScope(compress.ScopeTensor))
		if err != nil {
			t.Fatal(err)
		}
		coded = append(coded, c...)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := compress.Header{PeftType: "LORA", ConfigName: compress.AdapterConfigFile, Config: `{"peft_type":"LORA","r":16}`,
		Density: 0.01, Alpha: "auto", Scope: compress.ScopeTensor}
	if _, err := compress.Write(f, h, coded); err != nil {
		t.Fatal(err)
	}
}

// writeModelPair writes a base model of count F32 tensors of n elements
// and a fine-tune of it that changed 5% of each, tensor by tensor.
func writeModelPair(t *testing.T, base, ft string, count, n int) {
	t.Helper()
	var infos []safetensors.TensorInfo
	for i := range count {
		infos = append(infos, safetensors.TensorInfo{Name: fmt.Sprintf("h.%d.weight", i), DType: safetensors.F32, Shape: []int64{int64(n)}})
	}
	rng := rand.New(rand.NewPCG(53, 54))
	var ws []*safetensors.Writer
	var fs []*os.File
	for _, d := range []string{base, ft} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(d, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		w, err := safetensors.NewWriter(f, map[string]string{"format": "pt"}, infos)
		if err != nil {
			t.Fatal(err)
		}
		ws, fs = append(ws, w), append(fs, f)
	}
	b, d := make([]float32, 1<<20), make([]float32, 1<<20)
	for range count {
		for done := 0; done < n; done += len(b) {
			for j := range b {
				b[j] = float32(j%1000) * 0.001
				d[j] = b[j]
				if rng.IntN(20) == 0 {
					d[j] += float32(rng.NormFloat64() * 0.01)
				}
			}
			if err := ws[0].WriteFloat32(b); err != nil {
				t.Fatal(err)
			}
			if err := ws[1].WriteFloat32(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range ws {
		if err := ws[i].Close(); err != nil {
			t.Fatal(err)
		}
		if err := fs[i].Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// writeHeaderBombs writes two containers whose headers are as large as the
// limit allows: one of 170,000 one-element tensors, one with a 15 MiB
// config. Both compress to little.
func writeHeaderBombs(t *testing.T, manyTensors, bigConfig string) {
	t.Helper()
	h := compress.Header{PeftType: "LORA", ConfigName: compress.AdapterConfigFile, Config: `{"peft_type":"LORA"}`, Density: 0.2, Alpha: "auto", Scope: compress.ScopeGlobal}
	one := func(name string) compress.Coded {
		return compress.Coded{TensorHeader: compress.TensorHeader{Name: name, DType: "F32", Shape: []int64{1}, Mode: "sparse", M: 1}}
	}
	var cs []compress.Coded
	for i := range 170_000 {
		cs = append(cs, one(fmt.Sprintf("t%07d", i)))
	}
	write := func(path string, h compress.Header, cs []compress.Coded) {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := compress.Write(f, h, cs); err != nil {
			t.Fatal(err)
		}
	}
	write(manyTensors, h, cs)
	h.Config = `{"peft_type":"LORA","x":"` + strings.Repeat("a", 15<<20) + `"}`
	write(bigConfig, h, []compress.Coded{one("w")})
}
