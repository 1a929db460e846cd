package gossip

import (
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Trusted reports whether e, as the View returned it, comes from one of
// publishers: its metadata come from a verified publication (e.Signed) by
// a listed publisher. Unsigned experts, whose publisher is only a
// provider's claim, and experts signed by anyone else are not trusted; an
// empty list trusts nothing. Trusting every publisher (trust.publishers:
// ["*"]) is the caller's decision, made before asking.
func Trusted(e Entry, publishers []peer.ID) bool {
	return e.Signed && e.Publisher != "" && slices.Contains(publishers, e.Publisher)
}
