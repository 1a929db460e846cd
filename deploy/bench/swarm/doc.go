// Package swarm simulates an expertd swarm on go-libp2p's simnet: many
// real nodes (node.New, the daemon's own code) on simulated links with
// latency and bandwidth, on synctest's virtual clock so that the figures
// measure the protocol and not this machine's CPU. TestSwarm writes them
// as markdown; scripts/bench.sh runs it with the other benchmarks.
package swarm
