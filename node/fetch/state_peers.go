package fetch

import (
	"cmp"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// What the fetch state knows of its peers: who they are, what they hold
// (from headers and watches), and when a busy one may be asked again.

// holds takes in all that p said it holds (has; nil: every leaf). What a
// watch told since stays: holdings only grow.
func (s *fetchState) holds(p *peerState, has []bool, now time.Time) {
	has = slices.Clone(has) // the state is changed later (a watch's Haves); the event stays as given
	if has != nil && p.has != nil && p.watch == watchOn && len(has) == len(p.has) {
		for i, ok := range p.has {
			has[i] = has[i] || ok
		}
	}
	p.has, p.hasAt, p.told = has, now, true
}

// have takes in what a peer's watch told.
func (s *fetchState) have(ev evHave, now time.Time) {
	p := s.peers[ev.peer]
	if p == nil || s.layout == nil {
		return
	}
	p.watch = watchOn
	switch {
	case ev.complete:
		s.holds(p, nil, now)
	case ev.header:
		s.holds(p, ev.has, now)
	case p.has != nil:
		for _, i := range ev.add {
			if i < uint64(len(p.has)) {
				p.has[i] = true
			}
		}
		p.hasAt = now
	}
}

// wakeAt is when a busy peer's wait ends (zero: none waits): the loop
// ticks then.
func (s *fetchState) wakeAt() time.Time {
	var at time.Time
	for _, p := range s.peers {
		if p.phase == peerBusy && (at.IsZero() || p.retryAt.Before(at)) {
			at = p.retryAt
		}
	}
	return at
}

// holderIdle reports whether an idle partial holder may yet get what is
// missing: with nothing else running, the fetch waits for it.
func (s *fetchState) holderIdle() bool {
	for _, p := range s.peers {
		if p.phase == peerIdle && p.has != nil {
			return true
		}
	}
	return false
}

// addPeers makes new providers idle, up to knownPerSlot x maxProviders
// known (failed peers aside). When there are more new ones than room, it
// takes a random choice of them, not the first listed: every fetch of a
// swarm hears of the others in about the same order, and would otherwise
// know the same first ones and leave the uplinks of the last unused.
func (s *fetchState) addPeers(ps []peer.ID) {
	known := len(s.peers) - s.count(peerFailed)
	var fresh []peer.ID
	seen := map[peer.ID]bool{}
	for _, id := range ps {
		if id != s.cfg.self && s.peers[id] == nil && !seen[id] {
			seen[id] = true
			fresh = append(fresh, id)
		}
	}
	room := knownPerSlot*s.cfg.maxProviders - known
	if len(fresh) > room && s.rng != nil {
		s.rng.Shuffle(len(fresh), func(i, j int) { fresh[i], fresh[j] = fresh[j], fresh[i] })
	}
	for _, id := range fresh[:max(min(room, len(fresh)), 0)] {
		s.peers[id] = &peerState{id: id}
	}
}

func (s *fetchState) count(phase peerPhase) int {
	n := 0
	for _, p := range s.peers {
		if p.phase == phase {
			n++
		}
	}
	return n
}

// sortedPeers lists the peers known in ID order.
func (s *fetchState) sortedPeers() []*peerState {
	ps := make([]*peerState, 0, len(s.peers))
	for _, p := range s.peers {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *peerState) int { return cmp.Compare(a.id, b.id) })
	return ps
}
