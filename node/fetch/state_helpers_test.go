package fetch

import (
	"fmt"
	"slices"
	"strings"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/unixfs"
)

var stateRoot = func() cid.Cid {
	c, err := cid.Decode("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	if err != nil {
		panic(err)
	}
	return c
}()

func testLayout(n int) *unixfs.Layout {
	l := &unixfs.Layout{Root: stateRoot, Size: uint64(n) * unixfs.ChunkSize, Leaves: make([]unixfs.Leaf, n)}
	for i := range l.Leaves {
		l.Leaves[i] = unixfs.Leaf{Size: unixfs.ChunkSize, Offset: uint64(i) * unixfs.ChunkSize}
	}
	return l
}

// Events, briefly; peers are named by their IDs.
func start(peers ...string) evStart { return evStart{peers: named(peers)} }
func tick(peers ...string) evTick   { return evTick{peers: named(peers)} }
func leafIn(req reqID, i uint64) evLeaf {
	return evLeaf{req: req, index: i, size: unixfs.ChunkSize}
}
func end(req reqID, err error) evEnd { return evEnd{req: req, err: err} }

// A watch of peer says: its header (has; nil: every leaf), then leaves
// held since, then that it holds every leaf.
func watched(name string, has []bool) evHave {
	return evHave{peer: peer.ID(name), header: true, has: has}
}
func nowHas(name string, leaves ...uint64) evHave { return evHave{peer: peer.ID(name), add: leaves} }
func hasAll(name string) evHave                   { return evHave{peer: peer.ID(name), complete: true} }

// header: req's provider offers offered and has has (nil: every leaf).
func opened(req reqID) evOpened { return evOpened{req: req} }

func header(req reqID, offered []uint64, has []bool) evHeader {
	return evHeader{req: req, offered: offered, has: has}
}

// span lists leaves [a, b); bits is a bitmap of n leaves with those set.
func span(a, b uint64) []uint64 {
	var out []uint64
	for i := a; i < b; i++ {
		out = append(out, i)
	}
	return out
}

func bits(n int, set ...[]uint64) []bool {
	out := make([]bool, n)
	for _, s := range set {
		for _, i := range s {
			out[i] = true
		}
	}
	return out
}

func named(names []string) []peer.ID {
	var out []peer.ID
	for _, n := range names {
		out = append(out, peer.ID(n))
	}
	return out
}

// show renders actions as the cases spell them.
func show(acts []action) []string {
	var out []string
	for _, a := range acts {
		switch a := a.(type) {
		case doSend:
			what := fmt.Sprintf("share %d/%d", a.ask.part, a.ask.parts)
			if !a.ask.isShare() {
				what = "leaves " + showLeaves(a.ask.leaves)
			}
			out = append(out, fmt.Sprintf("send #%d %s %s", a.req, string(a.peer), what))
		case doCancel:
			out = append(out, fmt.Sprintf("cancel #%d", a.req))
		case doWatch:
			out = append(out, "watch "+string(a.peer))
		case doDrop:
			bad := ""
			if a.bad {
				bad = " bad"
			}
			out = append(out, fmt.Sprintf("drop %s%s", string(a.peer), bad))
		case doProgress:
			out = append(out, fmt.Sprintf("progress %d/%d", a.Leaves, a.OfLeaf))
		case doFinish:
			if a.err == nil {
				out = append(out, "done")
			} else {
				out = append(out, "fail: "+strings.ReplaceAll(a.err.Error(), stateRoot.String(), "R"))
			}
		}
	}
	return out
}

func showLeaves(idx []uint64) string {
	var parts []string
	for _, r := range toRanges(idx) {
		if r.End == r.Start+1 {
			parts = append(parts, fmt.Sprint(r.Start))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", r.Start, r.End-1))
		}
	}
	return strings.Join(parts, ",")
}

func newTestState(tc stateCase) (*fetchState, *unixfs.Layout) {
	cfg := stateConfig{self: "self", maxProviders: 8, stall: 30 * time.Second, minRate: 64 << 10}
	if tc.max > 0 {
		cfg.maxProviders = tc.max
	}
	if tc.stall > 0 {
		cfg.stall = tc.stall
	}
	if tc.minRate > 0 {
		cfg.minRate = tc.minRate
	}
	return newFetchState(cfg, stateRoot, nil), testLayout(tc.leaves)
}

// applyLikeLoop applies ev as the loop does: the layout comes with the
// start when held is not nil (the nodes are held here), and a header's
// layout becomes an evLayout first if it is news.
func applyLikeLoop(s *fetchState, l *unixfs.Layout, held []bool, ev event, now time.Time) []action {
	switch e := ev.(type) {
	case evStart:
		if held != nil {
			e.layout, e.held = l, held
		}
		return s.apply(e, now)
	case evHeader:
		e.layout = l
		if s.layout == nil {
			acts := s.apply(evLayout{layout: l, held: make([]bool, len(l.Leaves))}, now)
			return append(acts, s.apply(e, now)...)
		}
		return s.apply(e, now)
	}
	return s.apply(ev, now)
}

// checkState checks the scheduler's invariants: the counts agree with
// the leaves; a requested leaf belongs to a running request that is still
// to bring it; a request and its peer point at each other; no more
// requests than MaxProviders; no more peers known than the bound.
func checkState(s *fetchState) error {
	held, missing := 0, 0
	for i, l := range s.leaves {
		switch l.phase {
		case leafHeld:
			held++
		case leafMissing:
			missing++
		case leafRequested:
			r := l.owner
			if r == nil || s.requests[r.id] != r {
				return fmt.Errorf("leaf %d requested by a request not running", i)
			}
			if !r.toBring(uint64(i), len(s.leaves)) {
				return fmt.Errorf("leaf %d owned by #%d, which is not to bring it", i, r.id)
			}
		}
		if l.phase != leafRequested && l.owner != nil {
			return fmt.Errorf("leaf %d %v with an owner", i, l.phase)
		}
	}
	if held != s.held || missing != s.missing {
		return fmt.Errorf("counts held %d missing %d, leaves say %d and %d", s.held, s.missing, held, missing)
	}
	var bytes uint64
	for i, l := range s.leaves {
		if l.phase == leafHeld {
			bytes += s.layout.Leaves[i].Size
		}
	}
	if bytes != s.bytes {
		return fmt.Errorf("%d bytes held, leaves say %d", s.bytes, bytes)
	}
	for id, r := range s.requests {
		if r.id != id || r.peer.phase != peerActive || r.peer.req != r {
			return fmt.Errorf("request #%d and its peer %s (%v) disagree", id, r.peer.id, r.peer.phase)
		}
	}
	known := 0
	for _, p := range s.peers {
		if (p.phase == peerActive) != (p.req != nil) {
			return fmt.Errorf("peer %s %v with request %v", p.id, p.phase, p.req)
		}
		if p.phase != peerFailed {
			known++
		}
	}
	if len(s.requests) > s.cfg.maxProviders {
		return fmt.Errorf("%d requests running, MaxProviders %d", len(s.requests), s.cfg.maxProviders)
	}
	if known > knownPerSlot*s.cfg.maxProviders {
		return fmt.Errorf("%d peers known, bound %d", known, knownPerSlot*s.cfg.maxProviders)
	}
	return nil
}

// toBring reports whether r is still to bring leaf i of n.
func (r *request) toBring(i uint64, n int) bool {
	switch r.phase {
	case reqSent:
		return slices.Contains(r.ask.asked(uint64(n)), i)
	case reqReceiving:
		return slices.Contains(r.offered[r.next:r.limit], i)
	}
	return false
}
