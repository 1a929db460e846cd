package swarm

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// report is TestSwarm's figures, written as markdown.
type report struct {
	Swarm          swarmResult
	HTTP           httpResult
	Pair, HTTPPair time.Duration
	Took           time.Duration // real time the simulations took
}

func quantiles(ds []time.Duration) (median, last time.Duration) {
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2], s[len(s)-1]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func (r report) markdown() string {
	sw, size := r.Swarm, float64(r.Swarm.Size)
	n := sw.Nodes - 1
	reachMed, reachMax := quantiles(sw.Reach)
	doneMed, doneMax := quantiles(sw.Done)
	httpMed, httpMax := quantiles(r.HTTP.Done)
	fl := floor(sw.Size)
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("## Swarm")
	p("")
	p("%d real expertd nodes (node.New, default configuration) on go-libp2p's simnet: every node has its own "+
		"%d Mbit/s uplink and downlink, any two are %v apart (RTT), QUIC; synctest's virtual clock, so CPU time "+
		"does not count. Node 0 publishes a %.1f MiB expert (a synthetic LoRA at density 2/3); every other node "+
		"starts fetching it when the announcement reaches it. Plain HTTP: the same number of net/http clients "+
		"download as many bytes at once from one net/http server (HTTP/1.1 over a libp2p stream, same links). "+
		"Floor of one fetch: size / bandwidth + 2 RTT = %s.",
		sw.Nodes, bandwidth/1_000_000, rtt, size/(1<<20), secs(fl))
	p("")
	p("| measure | expertd | plain HTTP | target |")
	p("|---|---|---|---|")
	p("| announcement reaches the other %d nodes (median / last) | %v / %v | | |", n, reachMed, reachMax)
	p("| all %d nodes hold the expert (median / last, from publish) | %s / %s | %s / %s | far ahead of HTTP: %.1fx faster |",
		n, secs(doneMed), secs(doneMax), secs(httpMed), secs(httpMax), httpMax.Seconds()/doneMax.Seconds())
	p("| publisher's bytes sent (x the expert) | %.2f x | %.2f x | < 5 x |", float64(sw.Sent)/size, float64(r.HTTP.Sent)/size)
	p("| all nodes' bytes sent (x the expert; %d copies needed) | %.2f x | | |", n, float64(sw.TotalSent)/size)
	p("| one node fetching alone (x floor) | %s (%.2f x) | %s (%.2f x) | <= 1.2 x floor |",
		secs(r.Pair), r.Pair.Seconds()/fl.Seconds(), secs(r.HTTPPair), r.HTTPPair.Seconds()/fl.Seconds())
	p("| one pair, expertd / HTTP | %.2f x | | <= 1.1 x |", r.Pair.Seconds()/r.HTTPPair.Seconds())
	p("")
	p("Bytes sent count everything on a node's uplink (QUIC, gossip, DHT). Fetches that failed and were "+
		"started again: %d. The one-node fetch runs on a connection that has carried only gossip (QUIC's "+
		"initial congestion window), from the fetch request to the expert stored and indexed. The simulations "+
		"took %v of real time.", sw.Failures, r.Took.Round(time.Second))
	return b.String()
}
