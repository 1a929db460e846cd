// Package node wires expertd's services into the daemon: the libp2p host
// and DHT, the content-addressed store, the fetch protocol, gossip of
// availability and the HTTP API, started and stopped together by Serve.
//
// node.go is the wiring alone: New builds the parts, services() lists what
// Serve runs (in start order) and Close releases them; lifetime.go is the
// node's one context and the background work under it. The API's calls are
// answered in backend.go (experts), transfers.go (fetches, kept in the
// table of transfer.go), inference*.go (the hand-off to the inference
// server), prefetch*.go (want rules) and status.go (the status page and the
// metrics' snapshot); convert.go turns the store's and gossip's records of
// an expert into the API's.
package node
