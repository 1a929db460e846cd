package gossip

import (
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Trusted reports whether e, as the View returned it, is trusted under the
// list of trusted publishers (trust.publishers), that is, whether the node
// may fetch it and hand it to the inference server on its own:
//
//   - with an empty list (the default, an open swarm), every expert is
//     trusted, signed or not, as before publications existed;
//   - otherwise only an expert whose metadata come from a verified
//     publication (e.Signed) by a listed publisher is; unsigned experts,
//     and experts signed by anyone else, are not.
//
// A user may still fetch an untrusted expert by hand.
func Trusted(e Entry, publishers []peer.ID) bool {
	if len(publishers) == 0 {
		return true
	}
	return e.Signed && slices.Contains(publishers, e.Publisher)
}
