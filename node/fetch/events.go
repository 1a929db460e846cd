package fetch

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/unixfs"
)

// The scheduler's events (what fetchState.apply is told) and actions (what
// it answers), and what a request asks for.

// ask is what a request asks for: leaves (ascending), or while the
// layout is unknown, the part-th of parts shares of them.
type ask struct {
	leaves      []uint64
	part, parts uint32
}

func (a ask) isShare() bool { return a.leaves == nil }

// asked lists the leaves a asks of n.
func (a ask) asked(n uint64) []uint64 {
	if !a.isShare() {
		return a.leaves
	}
	start, end := share(n, a.part, a.parts)
	out := make([]uint64, 0, end-start)
	for i := start; i < end; i++ {
		out = append(out, i)
	}
	return out
}

// Events: what apply is told.
type event interface{ isEvent() }

type (
	// evStart starts the fetch with the providers known and, when the
	// nodes are held here, the layout and the leaves held.
	evStart struct {
		peers  []peer.ID
		layout *unixfs.Layout
		held   []bool
	}
	// evLayout: the layout is known (from a verified header, or from the
	// nodes held here), and which leaves are held here.
	evLayout struct {
		layout *unixfs.Layout
		held   []bool
	}
	// evTick: time passed; peers is what the provider source says now.
	evTick struct{ peers []peer.ID }
	// evOpened: a request's stream is open and its request written: from
	// now on, its provider's silence counts (opening it may take a dial, a
	// wait for a direct connection, a relay).
	evOpened struct{ req reqID }
	// evHeader: a request's header came. layout is the one it verified
	// (the loop turns it into an evLayout first if it is news); offered
	// is what the provider sends, has what it has (nil: every leaf).
	evHeader struct {
		req     reqID
		layout  *unixfs.Layout
		offered []uint64
		has     []bool
	}
	// evPiece: a request reading a leaf in pieces brought one more that
	// verified: it is not silent, however long the whole leaf takes (a
	// requester whose downlink many streams share).
	evPiece struct {
		req reqID
	}
	// evLeaf: a request brought leaf index, verified and stored.
	evLeaf struct {
		req   reqID
		index uint64
		size  int
	}
	// evEnd: a request ended (err nil: after its last offered leaf).
	evEnd struct {
		req reqID
		err error
	}
	// evHave: a watch of peer (have.go) told what it holds: with header,
	// has is all it holds (nil: every leaf); else it now holds add too,
	// and every leaf when complete.
	evHave struct {
		peer     peer.ID
		header   bool
		has      []bool
		add      []uint64
		complete bool
	}
	// evWatchEnd: the watch of peer ended (err nil: it holds every leaf).
	evWatchEnd struct {
		peer peer.ID
		err  error
	}
)

func (evStart) isEvent()    {}
func (evLayout) isEvent()   {}
func (evTick) isEvent()     {}
func (evOpened) isEvent()   {}
func (evHeader) isEvent()   {}
func (evLeaf) isEvent()     {}
func (evPiece) isEvent()    {}
func (evEnd) isEvent()      {}
func (evHave) isEvent()     {}
func (evWatchEnd) isEvent() {}

// Actions: what apply answers.
type action interface{ isAction() }

type (
	// doSend opens a stream to peer and sends the request.
	doSend struct {
		req  reqID
		peer peer.ID
		ask  ask
	}
	// doCancel cancels a request.
	doCancel struct{ req reqID }
	// doWatch starts a watch of peer: what it holds, as it changes.
	doWatch struct{ peer peer.ID }
	// doDrop reports a provider that failed this fetch; bad: it sent a
	// block or header that failed verification.
	doDrop struct {
		peer peer.ID
		err  error
		bad  bool
	}
	// doProgress reports the leaves and bytes held.
	doProgress struct{ Progress }
	// doFinish ends the fetch: complete when err is nil.
	doFinish struct{ err error }
)

func (doSend) isAction()     {}
func (doCancel) isAction()   {}
func (doWatch) isAction()    {}
func (doDrop) isAction()     {}
func (doProgress) isAction() {}
func (doFinish) isAction()   {}
