// Package swarm simulates expertd swarms on go-libp2p's simnet: many real
// nodes (node.New, the daemon's own code) on simulated links with latency
// and bandwidth, on synctest's virtual clock so that the figures measure
// the protocol and not this machine's CPU. The scenarios
// (scenario_test.go): 50 and 200 nodes, a heterogeneous swarm (slow links,
// a far group), churn (fetchers killed mid-fetch), and a LAN on the real
// clock with a CPU profile. TestSwarm runs those -scenarios names (all by
// default) and writes swarm.md and its plots; scripts/bench.sh runs it with
// the other benchmarks. -trace logs, second by second, how much of the
// uplinks the swarm uses, how many nodes hold each leaf, and what every
// fetcher holds (go test -v to see it).
package swarm
