package codec

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
	"github.com/expertd/expertd/compress/synth"
)

var (
	refitAdapters = flag.String("adapters", "", "TestRefitCLI: comma list of more LoRA adapter directories to time")
	binaries      = flag.String("bin", "", "TestRefitCLI: comma list of expertd binaries to time, interleaved (default: build this tree's)")
)

// refitAdapter is one adapter TestRefitCLI times.
type refitAdapter struct{ name, dir string }

// TestRefitCLI times `expertd compress` and `expertd compress --refit` of
// LoRA adapters through the CLI: the python r16 fixture, synthetic
// adapters shaped like BenchmarkRefit's, and any given with -adapters;
// interleaved, all cores; with several binaries (-bin), each in turn, for a
// before and after in the same state of the machine. It writes
// DIR/refit-cli.md.
func TestRefitCLI(t *testing.T) {
	if *outDir == "" {
		t.Skip("measures the refit only when given -out DIR")
	}
	var bins []string
	for _, b := range strings.Split(*binaries, ",") {
		if b != "" {
			bins = append(bins, b)
		}
	}
	if len(bins) == 0 {
		bins = []string{daemontest.Build(t)}
	}
	dir := tmpfsDir(t)
	adapters := []refitAdapter{{"python-r16", "../../../compress/testdata/peft/python-lora-r16"}}
	for _, s := range []struct {
		name      string
		mods, dim int
		rank      int
	}{{"synth-r16-2048", 32, 2048, 16}, {"synth-r64-2048", 8, 2048, 64}} {
		d := filepath.Join(dir, s.name)
		if err := synth.WriteLoRAModules(d, s.mods, s.dim, s.dim, s.rank, 5); err != nil {
			t.Fatal(err)
		}
		adapters = append(adapters, refitAdapter{s.name, d})
	}
	for _, d := range strings.Split(*refitAdapters, ",") {
		if d != "" {
			adapters = append(adapters, refitAdapter{filepath.Base(d), d})
		}
	}
	load0, start := loadAvg(), time.Now()
	samples := map[string][]sample{}
	out := filepath.Join(dir, "out.cpeft")
	for range *runs {
		for _, a := range adapters {
			for _, bin := range bins {
				for _, mode := range []string{"plain", "refit"} {
					args := []string{"compress", a.dir, "-o", out, "--density", density}
					if mode == "refit" {
						args = append(args, "--refit")
					}
					k := a.name + " " + bin + " " + mode
					samples[k] = append(samples[k], cli(t, bin, "", args...))
				}
			}
		}
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("Measured %s, %d CPUs, load average %s at the start and %s at the end; %d runs of each, interleaved,",
		start.UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), load0, loadAvg(), *runs)
	p("density %s, all cores, containers written to tmpfs. MB/s are of the adapter's safetensors file (10^6 bytes).", density)
	p("")
	p("| adapter | expertd | source MB | plain best | plain median | refit best | refit median | refit / plain: best, median wall, median CPU |")
	p("|---|---|---:|---:|---:|---:|---:|---:|")
	for _, a := range adapters {
		st, err := os.Stat(filepath.Join(a.dir, "adapter_model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		mb := float64(st.Size()) / 1e6
		for _, bin := range bins {
			pl, rf := summarize(samples[a.name+" "+bin+" plain"]), summarize(samples[a.name+" "+bin+" refit"])
			p("| %s | %s | %.1f | %.3f s (%.0f MB/s) | %.3f s | %.3f s (%.0f MB/s) | %.3f s | %.1fx, %.1fx, %.1fx |", a.name, filepath.Base(bin), mb,
				pl.best, mb/pl.best, pl.median, rf.best, mb/rf.best, rf.median, rf.best/pl.best, rf.median/pl.median, rf.cpu/pl.cpu)
		}
	}
	p("")
	p("Method: `go test ./deploy/bench/codec -run TestRefitCLI -v -count=1 -args -out DIR [-runs N] [-adapters DIR,...] [-bin EXPERTD,...]`.")
	md := b.String()
	t.Log("\n" + md)
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*outDir, "refit-cli.md"), []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
}
