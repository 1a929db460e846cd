// Package expert holds what describes an expert wherever the node keeps or
// sends it: Metadata, the fields the API's Expert, the store's entries and
// gossip's announcements share. It is a leaf: it imports nothing of the
// node, so each of them can embed it.
//
// The wire forms stay at their edges: the API and the store write
// Metadata's JSON field names (their formats are pinned by tests in
// node/api and node/store), gossip converts it to and from its protobuf
// and signs it in a publication.
package expert
