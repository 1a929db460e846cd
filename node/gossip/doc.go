// Package gossip tells the swarm which experts this node holds and keeps a
// View of which peers hold which experts.
//
// Announcements travel on the gossipsub topic expertd/announce/1 (Topic),
// one signed protobuf Announcement per message (proto/announce.proto). A
// node announces an expert when it publishes or finishes fetching it
// (Service.Announce) and re-announces its whole catalog periodically,
// rate-limited, so that late joiners learn it. On every new connection each
// side also pulls the other's catalog over the stream protocol
// /expertd/catalog/1.0.0 (CatalogProtocol), so a fresh node knows its
// neighbours' experts at once.
//
// Every announcement, from the topic or from a catalog, is checked the same
// way: a size limit, a valid CID and peer IDs, bounded strings, a time no
// more than MaxClockSkew ahead and no older than the TTL, a provider equal
// to the peer that vouches for it (the signer of the gossipsub message, or the
// remote end of the authenticated catalog stream) and, if it carries an
// envelope, a publication of exactly its metadata signed by its publisher.
// On the topic, garbage is rejected (the forwarding peer is penalized by peer
// scoring) while stale and replayed announcements are ignored, and so are
// those over a rate limit: a token bucket per provider and one per
// publisher (Options.ProviderLimit, PublisherLimit) bound how fast a peer
// can tell a node of experts new to it, while the periodic refreshes of
// experts it knows are free.
//
// The view is bounded, whatever peers send: in experts, in the memory of
// its entries and in experts per provider (Options.MaxExperts,
// MaxViewBytes, MaxPerProvider). When full, it evicts the least recently
// seen expert of the peer that delivered the most (the provider, or the
// peer that forwarded its announcement), never one that Options.Keep
// keeps, so a flood from a few identities, or from many made up and sent
// over one connection, displaces its own entries. A catalog brings at
// most MaxCatalog entries, and those new to the node are rate-limited per
// peer (CatalogEntryLimit) before their signatures are checked; a peer
// reconnecting in a loop is pulled a few times only. On the topic, a peer
// forwarding others' announcements is rate-limited too
// (ForwarderLimit), and one that keeps sending its own over its limit is
// rejected, so that peer scoring stops listening to it. View.Page, Scan
// and Counts read the view without copying it.
//
// The provider's signature says only who holds an expert. Who published it
// and what it is are vouched for by a publication: the publisher signs the
// expert's CID and metadata with its libp2p key (SignPublication) into a
// libp2p signed envelope that travels with every announcement of the expert,
// whoever provides it, and that any node can verify (OpenPublication).
// Announcements without one are still accepted, as unsigned claims; the View
// prefers signed metadata to them, and Trusted tells, under a list of trusted
// publishers, which experts a node may fetch and serve on its own.
//
// The pubsub instance must flood-publish, or announcements published before
// the gossipsub mesh forms (as on a fresh connection) are lost: build it with
// NewPubSub, or pass pubsub.WithFloodPublish(true) yourself.
package gossip
