package memory

import (
	"fmt"
	"strings"
	"time"
)

// The daemon's memory targets.
const (
	idleTarget   = 60e6     // bytes of RSS, idle
	growthTarget = 64 << 20 // bytes of RSS above idle during a 100 MiB fetch
)

// result holds the readings of one run.
type result struct {
	idleA, idleB procMem // after settling, before anything was published
	preA, preB   procMem // just before the fetch (A has published)
	endA, endB   procMem // after the fetch
	peakA, peakB int64   // RSS peaks during the fetch
	matB         int64   // B's RSS peak while it writes the expert as a PEFT dir
	fetchTime    time.Duration
	matTime      time.Duration
	samples      int
	size         int64
}

type row struct{ measure, measured, target, met string }

func (r result) rows() []row {
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	growB, growA := r.peakB-r.idleB.RSS, r.peakA-r.idleA.RSS
	return []row{
		{"B (fetcher) idle RSS", mb(r.idleB.RSS), "<= 60 MB", yes(r.idleB.RSS <= idleTarget)},
		{"B peak RSS during the fetch", fmt.Sprintf("%s (VmHWM %s)", mb(r.peakB), mb(r.endB.HWM)), "", ""},
		{"B peak - idle", mib(growB), "<= +64 MiB", yes(growB <= growthTarget)},
		{"B peak - idle while writing it as a PEFT dir (`fetch -o`)", mib(r.matB - r.idleB.RSS), "", ""},
		{"A (provider) idle RSS", mb(r.idleA.RSS), "<= 60 MB", yes(r.idleA.RSS <= idleTarget)},
		{"A RSS after publishing, before the fetch", mb(r.preA.RSS), "", ""},
		{"A peak RSS while serving", mb(r.peakA), "", ""},
		{"A peak - idle", mib(growA), "<= +64 MiB", yes(growA <= growthTarget)},
	}
}

// lines is the table as log lines.
func (r result) lines() []string {
	var ls []string
	for _, x := range r.rows() {
		l := fmt.Sprintf("%-42s %s", x.measure+":", x.measured)
		if x.target != "" {
			l += fmt.Sprintf("  (target %s, met: %s)", x.target, strings.Trim(x.met, "*"))
		}
		ls = append(ls, l)
	}
	return ls
}

// markdown is the fragment written to memory.md.
func (r result) markdown() string {
	var b strings.Builder
	b.WriteString("## Memory\n\n| measure | measured | target | met? |\n|---|---|---|---|\n")
	for _, x := range r.rows() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", x.measure, x.measured, x.target, x.met)
	}
	fmt.Fprintf(&b, "\nMeasured by `go test ./deploy/bench/memory -run TestMemory -v -count=1 -args -out DIR`: two `expertd daemon`\n"+
		"processes built from ./cmd/expertd (default config, but loopback TCP, mDNS off, B bootstrapped to A), VmRSS\n"+
		"from /proc/PID/status; idle = %v after B connected. A publishes a %.1f MiB container (a synthetic F32 LoRA\n"+
		"of %.0f M parameters, 2 GiB, by `expertd compress --density %s`: 1.6 bits/param) and B fetches it through its\n"+
		"API into its store (%.1f s on loopback), both sampled every %v (%d samples; VmHWM is used when the fetch\n"+
		"raised it); then B writes it as a PEFT directory (%.1f s), sampled the same way.\n",
		settle, float64(r.size)/(1<<20), float64(expertParams)/1e6, expertDensity, r.fetchTime.Seconds(), period, r.samples, r.matTime.Seconds())
	return b.String()
}

func mb(n int64) string  { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
func mib(n int64) string { return fmt.Sprintf("%+.1f MiB", float64(n)/(1<<20)) }
