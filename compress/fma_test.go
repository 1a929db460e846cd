package compress

import (
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/expertd/expertd/internal/testutil"
)

// fusedOK are the files whose fused multiply-adds change no container
// byte (the information bound a summary reports).
var fusedOK = map[string]bool{"bound.go": true}

// TestNoFusedMultiplyAdd: Go may fuse x*y + z into one instruction, and
// does on arm64 (and on amd64 with GOAMD64=v3), which rounds once
// instead of twice: the same adapter would then compress to other bytes,
// and another CID, on another machine. The codec rounds every product
// explicitly (float64(x*y) + z); this compiles the package for arm64 and
// fails on any fused instruction the compiler still emits.
func TestNoFusedMultiplyAdd(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the package for arm64")
	}
	gobin, err := exec.LookPath("go") // go test puts GOROOT/bin first in PATH
	if err != nil {
		testutil.Missing(t, "no go command: %v", err)
	}
	cmd := exec.Command(gobin, "build", "-gcflags=-S", "-o", os.DevNull, ".")
	cmd.Env = append(os.Environ(), "GOARCH=arm64", "GOOS=linux", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build for arm64: %v\n%s", err, out)
	}
	// A line of -S: "\t0x0034 00052 (/path/compress/select.go:165)\tFMADDD\tF0, F1, F2, F3".
	fused := regexp.MustCompile(`\(([^()]*/compress/([a-z_0-9]+\.go)):([0-9]+)\)\s+(FMADD|FMSUB|FNMADD|FNMSUB)[SD]\b`)
	// Every instruction line names its source line: if few do, the
	// listing was not read and the test would pass for nothing.
	located := regexp.MustCompile(`\([^()]*/compress/[a-z_0-9]+\.go:[0-9]+\)\s+[A-Z]`)
	lines := map[string]bool{}
	instructions := 0
	for _, l := range strings.Split(string(out), "\n") {
		if located.MatchString(l) {
			instructions++
		}
		if m := fused.FindStringSubmatch(l); m != nil && !fusedOK[m[2]] {
			lines[m[2]+":"+m[3]] = true
		}
	}
	if instructions < 10000 {
		t.Fatalf("the arm64 listing holds %d instructions of the package: not the -S output this test reads", instructions)
	}
	if len(lines) > 0 {
		var at []string
		for l := range lines {
			at = append(at, l)
		}
		sort.Strings(at)
		t.Fatalf("fused multiply-adds on arm64 at %v: round the product explicitly, float64(x*y) + z", at)
	}
}
