// Package fetch implements the stream protocol /expertd/fetch/1.0.0: a
// requester pulls an expert's blocks from one or several providers in one
// request per provider (one round trip plus the bytes), verifies every block
// against the root CID as it arrives and writes it to the store.
//
// A request names the root CID and the leaves it wants (explicit ranges, or
// "share i of n" when the leaf count is not known yet); the provider answers
// with a header carrying the internal dag-pb nodes, then the leaves in order,
// each a length-prefixed protobuf frame (see proto/fetch.proto).
//
// A provider serves a few streams at once (upload slots), shared the way
// BitTorrent chokes and unchokes peers (slots.go): a stream takes a slot
// only once its request is read, and a holder that stalls, reads slowly or
// has had its turn loses it to a peer that asks, with a BUSY frame.
package fetch
