// Package linkbench measures fetches over a slow, far link on one machine:
// a TCP proxy on 127.0.0.1 adds a round-trip delay and a line rate (the
// kernel here has no netem), and BenchmarkFetchProxy times a verified
// 10 MiB expert through it against the physical floor and plain HTTP.
//
// The link model is Proxy's; see its doc comment.
package linkbench
