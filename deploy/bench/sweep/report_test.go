package sweep

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/expertd/expertd/deploy/bench/plot"
)

// The fetch's targets at 100 ms RTT, 20 Mbit/s.
const (
	targetRTT   = 100 // ms
	targetFloor = 1.2 // expertd time / floor
	targetHTTP  = 1.1 // expertd time / HTTP time
)

// writeReport writes dir/sweep.md and dir/fetch-vs-rtt.svg.
func writeReport(dir string, points []point, reps int) error {
	if err := os.WriteFile(filepath.Join(dir, "sweep.md"), []byte(markdown(points, reps)), 0o644); err != nil {
		return fmt.Errorf("sweep report: %w", err)
	}
	var svg bytes.Buffer
	if err := chart(points).WriteSVG(&svg); err != nil {
		return fmt.Errorf("sweep plot: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fetch-vs-rtt.svg"), svg.Bytes(), 0o644); err != nil {
		return fmt.Errorf("sweep plot: %w", err)
	}
	return nil
}

func markdown(points []point, reps int) string {
	var b strings.Builder
	b.WriteString("## Time to a 10 MiB expert against RTT\n\n")
	fmt.Fprintf(&b, "One pair of nodes on go-libp2p's simulated network (QUIC), %d Mbit/s uplink and downlink per node "+
		"(1500-byte token bucket, FQ-CoDel), RTT/2 added each way. Floor = size × 8 / bandwidth + 2 × RTT.\n\n",
		bandwidth/1_000_000)
	b.WriteString("| RTT (ms) | floor (s) | connection | expertd (s) | expertd x_floor | HTTP (s) | HTTP x_floor | expertd/HTTP |\n")
	b.WriteString("|---:|---:|:---|---:|---:|---:|---:|---:|\n")
	for _, p := range points {
		for _, c := range []struct {
			name        string
			fetch, http float64
		}{
			{"fresh", p.Fetch.Fresh.Seconds(), p.HTTP.Fresh.Seconds()},
			{"warm", p.Fetch.Warm.Seconds(), p.HTTP.Warm.Seconds()},
		} {
			f := p.Floor.Seconds()
			fmt.Fprintf(&b, "| %d | %.3f | %s | %.3f | %.3f | %.3f | %.3f | %.3f |\n",
				p.Link.RTT.Milliseconds(), f, c.name, c.fetch, c.fetch/f, c.http, c.http/f, c.fetch/c.http)
		}
	}
	b.WriteString("\n")
	for _, p := range points {
		if p.Link.RTT.Milliseconds() == targetRTT {
			b.WriteString(targets(p))
		}
	}
	b.WriteString(warmNote(points))
	fmt.Fprintf(&b, "Method: `go test ./deploy/bench/sweep -run TestSweep -args -out DIR`, on synctest's virtual clock "+
		"(CPU time counts for nothing, so the figures are those of the protocol and the transport, not of the machine). "+
		"expertd: random bytes in the UnixFS layout (1 MiB raw leaves), served by fetch.Provider and fetched by "+
		"fetch.Fetcher into a fresh store that verifies every block; HTTP: net/http GET of the same bytes, no keep-alive, "+
		"over a libp2p stream on the same connection (gostream). Fresh: a new connection per run, its handshake and "+
		"identify done before the clock starts; warm: the second transfer on a new "+
		"connection, after an untimed one of the same kind. Each figure is the median of %d runs.\n", reps)
	return b.String()
}

// targets says whether p, the point at 100 ms, meets the fetch's targets.
func targets(p point) string {
	f := p.Floor.Seconds()
	fresh, warm := p.Fetch.Fresh.Seconds(), p.Fetch.Warm.Seconds()
	rf, rw := fresh/p.HTTP.Fresh.Seconds(), warm/p.HTTP.Warm.Seconds()
	return fmt.Sprintf("Targets at %d ms (issue #7): expertd ≤ %.1f × floor — fresh %.3f, warm %.3f (%s); "+
		"expertd ≤ %.1f × HTTP — fresh %.3f, warm %.3f (%s).\n\n",
		targetRTT, targetFloor, fresh/f, warm/f, verdict(max(fresh, warm)/f <= targetFloor),
		targetHTTP, rf, rw, verdict(max(rf, rw) <= targetHTTP))
}

// warmNote points out the RTTs where a warm connection is markedly
// slower than a fresh one for both methods, which the table alone might
// suggest is the fetch protocol's doing; empty if there are none.
func warmNote(points []point) string {
	var slower []string
	for _, p := range points {
		if p.Fetch.Warm > p.Fetch.Fresh*21/20 && p.HTTP.Warm > p.HTTP.Fresh*21/20 {
			slower = append(slower, fmt.Sprint(p.Link.RTT.Milliseconds()))
		}
	}
	if len(slower) == 0 {
		return ""
	}
	at := strings.Join(slower, ", ")
	if n := len(slower); n > 1 {
		at = strings.Join(slower[:n-1], ", ") + " and " + slower[n-1]
	}
	return fmt.Sprintf("At %s ms the second transfer on a connection (warm) is over 5%% slower than the first (fresh), "+
		"for HTTP as much as for expertd: likely the congestion state QUIC is left in by a transfer, not the fetch protocol.\n\n", at)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

// chart plots seconds against RTT for both methods, fresh and warm, and the floor.
func chart(points []point) *plot.Chart {
	var x []float64
	ys := make([][]float64, 5)
	for _, p := range points {
		x = append(x, float64(p.Link.RTT.Milliseconds()))
		for i, d := range []float64{p.Fetch.Fresh.Seconds(), p.Fetch.Warm.Seconds(), p.HTTP.Fresh.Seconds(), p.HTTP.Warm.Seconds(), p.Floor.Seconds()} {
			ys[i] = append(ys[i], d)
		}
	}
	return &plot.Chart{
		Title:  fmt.Sprintf("Time to a verified 10 MiB expert, %d Mbit/s per node", bandwidth/1_000_000),
		XLabel: "RTT (ms)",
		YLabel: "seconds",
		Series: []plot.Series{
			// expertd wide under HTTP narrow: both show where they overlap
			{Name: "expertd fresh", X: x, Y: ys[0], Color: "#1f77b4", Width: 4},
			{Name: "expertd warm", X: x, Y: ys[1], Color: "#8cc4ea", Width: 4},
			{Name: "HTTP fresh", X: x, Y: ys[2], Color: "#d62728", Width: 1.5},
			{Name: "HTTP warm", X: x, Y: ys[3], Color: "#f28e2b", Width: 1.5},
			{Name: "floor", X: x, Y: ys[4], Color: "#555555", Dashed: true},
		},
	}
}
