// Package fetch implements the stream protocol /expertd/fetch/1.0.0: a
// requester pulls an expert's blocks from one or several providers in one
// request per provider (one round trip plus the bytes), verifies every block
// against the root CID as it arrives and writes it to the store.
//
// A request names the root CID and the leaves it asks for (explicit ranges,
// or "share i of n" when the leaf count is not known yet); the provider
// answers with a header carrying the internal dag-pb nodes, then the leaves
// in order, each a length-prefixed protobuf frame (see proto/fetch.proto).
//
// With the expert's outboard (the SHA-256 of each 64 KiB piece, its hash
// signed by the publisher: outboard.go), a requester checks each piece of
// a leaf as it arrives and its node's provider serves the verified pieces
// on at once, before the leaf is whole (flow.go, blockstream.go): a new
// leaf crosses the swarm at the pace of pieces, not of whole leaves.
//
// A requester watches every partial holder it knows (a watch request:
// have.go, watch.go): the holder answers with what it holds and then tells
// each leaf as it verifies it, so requesters always know who holds what
// and ask a holder for a leaf as soon as it has it. While others are
// served the same expert, a provider takes few requests at a time
// (uplink.go) and answers the rest BUSY with the time to ask again, and
// with its header when the request asks for it, so that a refused
// requester still learns the layout and what the provider holds and asks
// a free peer meanwhile. A requester gives up on a provider that goes
// silent (no header, or no leaf, for a while: killed or cut off) and asks
// others for its leaves at once.
//
// A provider serves a few streams at once (upload slots), shared the way
// BitTorrent chokes and unchokes peers (slots.go): a stream takes a slot
// only once its request is read, and a holder that stalls, reads slowly or
// has had its turn loses it to a peer that asks, with a BUSY frame.
//
// # Words
//
// One word per thing, in the code as here:
//
//   - A leaf of ours is missing (nobody is asked for it), requested (one
//     running request, its owner, is to bring it) or held (verified and
//     stored here).
//   - A provider has leaves: a full provider has them all; a partial
//     holder (a node still fetching the expert) has some, and says which
//     in its header's bitmap (FetchHeader.have, kept as has).
//   - A request asks for leaves (or a share); the provider's header offers
//     some of them, in order: those it has, fewer when it is loaded
//     (ProviderOptions.LoadedShare). It then sends the offered leaves.
//   - A peer's watch is none, asked, on (what it holds is current) or
//     over; a peer not yet told about is asked only once its watch said
//     what it holds (within watchPatience).
//   - A provider is idle (it may be asked), active (a request to it runs),
//     busy (it answered BUSY: asked again after a wait) or failed (not
//     asked again in this fetch; bad if it sent a block that failed
//     verification, and then avoided by every fetch for BadPeerTTL).
//   - A request is sent, receiving (its header came) or cut (we cancelled
//     it after the leaves it was still to bring were stolen).
//
// # The scheduler
//
// What to ask of whom is decided by fetchState (state.go, its policy in
// schedule.go), a state machine without I/O in the manner of iroh-blobs'
// downloader: apply(event, now) takes what happened (a start, a header, a
// leaf, a request's end, a tick of the clock with the providers known) and
// answers with actions (send a request, cancel one, drop a peer, report
// progress, finish). It reads no clock and starts nothing, so its policy
// is tested event by event (state_test.go). The loop in fetcher.go owns it,
// runs each request on a stream of its own (receive.go: the code facing a
// provider's bytes) and carries out the actions.
package fetch
