// Package node wires expertd's services into the daemon: the libp2p host
// and DHT, the content-addressed store, the fetch protocol, gossip of
// availability and the HTTP API, started and stopped together by Serve.
package node
