package natlab

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// outcome says in words what happened in a case.
func (r caseResult) outcome() string {
	if r.c.wantErr != "" {
		msg := r.cold.err
		if i := strings.Index(msg, r.c.wantErr); i >= 0 {
			msg = "…" + trimTo(msg[i:], 110)
		}
		return "fails: " + msg
	}
	return "fetched " + r.carrier
}

func trimTo(s string, n int) string {
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func ms(d time.Duration) string {
	if d == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

// machine says where the figures come from.
func machine() string {
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	uname, _ := exec.Command("uname", "-sr").Output()
	return fmt.Sprintf("%s; %s, %d CPUs (%s)", runtime.Version(), strings.TrimSpace(string(uname)), runtime.NumCPU(), cpu)
}

// writeReport writes the lab's table: each case, what happened, and the
// times; then relayed against direct transfer of the expert.
func writeReport(path string, results []caseResult, wan rate, loadavg []byte) error {
	var b strings.Builder
	variant := ""
	if *tcpRelay {
		variant = " -tcp-relay"
	}
	if *pinRelay {
		variant += " -pin-relay"
	}
	if *wanRate != "" {
		variant += " -wan-rate " + *wanRate
	}
	load, _, _ := strings.Cut(string(loadavg), " ")
	fmt.Fprintf(&b, "## Across NAT\n\nWritten by `go test ./deploy/natlab -run TestNATLab -args -out DIR%s` on %s.\n%s; load average %s when it started.\n\n",
		variant, time.Now().UTC().Format("2006-01-02 15:04 UTC"), machine(), load)
	var size uint64
	for _, r := range results {
		size = max(size, r.cold.size)
	}
	fmt.Fprintf(&b, "An expert of %.1f MiB; times as B's daemon took them, from the fetch request to the expert stored "+
		"(or to the error). *Again* fetches it anew (after `expertd rm`) over the connection then up, median of %d.\n\n",
		float64(size)/(1<<20), *warm)
	b.WriteString("| Case | Site A | Site B | Relay | What happens | Request → stored | Again |\n")
	b.WriteString("|---|---|---|---|---|---:|---:|\n")
	byName := map[string]caseResult{}
	for _, r := range results {
		byName[r.c.name] = r
		relayCol := r.c.relay.String()
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.c.name, r.c.natA, r.c.natB, relayCol, r.outcome(), ms(r.cold.took), ms(r.warmMedian()))
	}
	fmt.Fprintf(&b, "\nLinks to the internet (R's and each router's): %s.", wan)
	b.WriteString(" Plain TCP through them before the daemons started:")
	for _, r := range results {
		fmt.Fprintf(&b, " %s %s;", r.c.name, r.link)
	}
	b.WriteString("\n")
	b.WriteString("\nCPU time per fetch again, of A, R and B together (and of each, in ms):")
	for _, r := range results {
		if n := time.Duration(len(r.warm)); n > 0 {
			c := r.warmCPU
			fmt.Fprintf(&b, " %s %s (%.0f, %.0f, %.0f);", r.c.name, ms(c.sum()/n),
				float64(c[0]/n)/1e6, float64(c[1]/n)/1e6, float64(c[2]/n)/1e6)
		}
	}
	b.WriteString("\n")
	rel, punched, direct := byName["sym"].warmMedian(), byName["cone"].warmMedian(), byName["fwd"].warmMedian()
	if rel > 0 && punched > 0 && direct > 0 {
		fmt.Fprintf(&b, "\nRelayed against direct, connection up: %s through the relay, %s hole-punched (%.2f x), %s to a forwarded port (%.2f x); target: at most 1.20 x.\n",
			ms(rel), ms(punched), float64(rel)/float64(punched), ms(direct), float64(rel)/float64(direct))
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
