// Package p2p builds expertd's libp2p host: a persistent ed25519 identity,
// TCP and QUIC listeners (TCP dials save a round trip: see TCP), explicit
// resource and connection limits, NAT traversal, mDNS, and a Kademlia DHT
// (protocol prefix /expertd) used for peer routing and for the provider
// records of experts (Provide and FindProviders).
package p2p
