// Package sweep measures the time to a verified 10 MiB expert against the
// round-trip time, expertd's fetch protocol next to plain HTTP/1.1, on
// go-libp2p's simulated network under synctest's virtual clock.
//
// It holds only tests. TestSweep runs when given an output directory,
//
//	go test ./deploy/bench/sweep -run TestSweep -count=1 -args -out DIR
//
// and writes DIR/sweep.md (a markdown table against the floor) and
// DIR/fetch-vs-rtt.svg (the same figures as a line plot). The relative
// DIR is taken from the package directory; scripts/bench.sh passes an
// absolute one.
package sweep
