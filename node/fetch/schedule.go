package fetch

import (
	"slices"
	"time"

	"github.com/expertd/expertd/node/unixfs"
)

const (
	// pollInterval is how often a running fetch asks its provider source
	// for new peers and wakes busy ones.
	pollInterval = 250 * time.Millisecond
	// A busy provider is asked again after a wait that doubles from
	// minBusyWait up to maxBusyWait (half of it random).
	minBusyWait = 500 * time.Millisecond
	maxBusyWait = 4 * time.Second
	// hasFresh is how long what a partial holder said it has is taken as
	// all it has; after that it is asked again, as it may have more.
	hasFresh = time.Second
	// holderPatience is how long a missing leaf waits for the partial
	// holders that have it before a full provider may be asked for it too.
	holderPatience = 2 * time.Second
	// watchPatience is how long a peer not asked yet waits for its watch
	// to say what it holds (a round trip) before it is asked blind.
	watchPatience = time.Second
	// A provider that sends no header within headerPatience (or five of
	// its round trips), or no leaf within leafPatience of the last one it
	// offered, is given up on (silence): it went away without closing.
	headerPatience = 2 * time.Second
	leafPatience   = 8 * time.Second
	// piecePatience is leafPatience for a request whose leaves arrive in
	// pieces (each 64 KiB, a second apart at the slowest rate a fetch
	// accepts): once one came, the next is due soon, and a provider that
	// went away is known in seconds, not a leaf's patience.
	piecePatience = 2 * time.Second
	// knownPerSlot bounds the peers one fetch keeps track of, per peer it
	// may fetch from at once (Options.MaxProviders).
	knownPerSlot = 4
	// endgameStall is how long a request's last leaf must have brought
	// nothing (no piece, no leaf) before a full provider may take it
	// (steal); half of piecePatience, after which it is cut anyway.
	endgameStall = piecePatience / 2
	// A peer is slow when its last request brought its leaves at less
	// than 1/slowShare of the best rate measured in the fetch: a provider
	// on a slow link, or whose upload many others share. It is asked
	// after the others.
	slowShare = 4
)

// plan watches the peers that may be partial holders, then hands out work
// to the idle peers.
func (s *fetchState) plan(now time.Time) {
	s.watchPeers(now)
	s.planRequests(now)
}

// awaitWatch reports whether p, not asked yet, waits for its watch to say
// what it holds: while other requests run, for up to watchPatience.
func (s *fetchState) awaitWatch(p *peerState, now time.Time) bool {
	return p.watch == watchAsked && !p.told && len(s.requests) > 0 && now.Sub(p.watchAt) < watchPatience
}

// planRequests hands out work to the idle peers, partial holders first:
// while the layout is unknown, the shares; then the missing leaves, a fair
// share of what each can give; when none is missing, a full provider may
// take the tail of the slowest request (steal).
func (s *fetchState) planRequests(now time.Time) {
	idle := s.idlePeers(now)
	var holders []int // per leaf: the partial holders that have it; counted once needed
	for k, p := range idle {
		if len(s.requests) >= s.cfg.maxProviders {
			return
		}
		switch {
		case s.layout == nil:
			if len(s.parts) == 0 {
				return
			}
			part := s.parts[0]
			s.parts = s.parts[1:]
			s.send(p, ask{part: part, parts: s.nparts}, now)
		case s.missing > 0:
			if holders == nil {
				holders = s.holders(now)
			}
			cands := s.candidates(p, holders, now)
			if len(cands) == 0 {
				continue
			}
			// A fair share of what p can give, split with the idle peers
			// left.
			n := (len(cands) + len(idle) - k - 1) / (len(idle) - k)
			take := cands[:n]
			slices.Sort(take)
			s.send(p, ask{leaves: take}, now)
		case p.has == nil:
			s.steal(p, now)
		}
	}
}

// watchPeers starts, once the layout is known, a watch of every peer that
// said it holds some leaves only, and of every peer that has not said yet
// while other requests run (a peer joining the fetch: most likely a
// partial holder); a partial holder then tells each leaf it comes to hold,
// and is asked for what it has. With no request running, a peer that has
// not said is asked at once, and its header tells.
func (s *fetchState) watchPeers(now time.Time) {
	if s.layout == nil {
		return
	}
	for _, p := range s.sortedPeers() {
		if p.watch != watchNone || p.phase == peerFailed {
			continue
		}
		if p.told && p.has != nil || !p.told && p.phase == peerIdle && len(s.requests) > 0 {
			p.watch, p.watchAt = watchAsked, now
			s.out = append(s.out, doWatch{peer: p.id})
		}
	}
}

// idlePeers lists the idle peers in a random order, partial holders
// first, and in each group the slow ones (see slow) last: with more idle
// peers than leaves to ask for, the leaves go to the others. A peer whose
// watch has not told what it holds yet is waited for while other requests
// run (it is most likely a partial holder that joined: asked blind, it
// would offer little or nothing).
func (s *fetchState) idlePeers(now time.Time) []*peerState {
	var idle []*peerState
	for _, p := range s.sortedPeers() { // ID order: the shuffle alone decides
		if p.phase == peerIdle && !s.awaitWatch(p, now) {
			idle = append(idle, p)
		}
	}
	if s.rng != nil {
		s.rng.Shuffle(len(idle), func(i, j int) { idle[i], idle[j] = idle[j], idle[i] })
	}
	best := s.bestRate()
	rank := func(p *peerState) int {
		r := 0
		if p.has == nil {
			r += 2
		}
		if p.rate > 0 && p.rate < best/slowShare {
			r++
		}
		return r
	}
	slices.SortStableFunc(idle, func(a, b *peerState) int { return rank(a) - rank(b) })
	return idle
}

// send makes a request of p.
func (s *fetchState) send(p *peerState, a ask, now time.Time) {
	s.lastID++
	r := &request{id: s.lastID, peer: p, ask: a, sentAt: now}
	s.requests[r.id] = r
	p.phase, p.req = peerActive, r
	for _, i := range a.leaves {
		if s.leaves[i].phase != leafHeld {
			s.setLeaf(i, leafRequested, r)
		}
	}
	s.out = append(s.out, doSend{req: r.id, peer: p.id, ask: a})
}

// holders counts, per leaf, the partial holders (failed ones aside) that
// said they have it, and starts the wait of the missing leaves not yet
// waiting.
func (s *fetchState) holders(now time.Time) []int {
	holders := make([]int, len(s.leaves))
	for i := range s.leaves {
		if l := &s.leaves[i]; l.phase == leafMissing && l.waitingSince.IsZero() {
			l.waitingSince = now
		}
	}
	for _, q := range s.peers {
		if q.has == nil || q.phase == peerFailed {
			continue
		}
		for i, ok := range q.has {
			if ok && s.leaves[i].phase == leafMissing {
				holders[i]++
			}
		}
	}
	return holders
}

// candidates lists the missing leaves to ask p for, rarest first: from a
// partial holder, those it said it has (when it said so less than hasFresh
// ago; else any, as it may have more now); from a full provider, or one
// not asked yet, the leaves no partial holder has, so that a publisher's
// upload goes to what the swarm lacks, and those that waited for their
// holders longer than holderPatience (busy, slow or lying holders).
func (s *fetchState) candidates(p *peerState, holders []int, now time.Time) []uint64 {
	partial := p.has != nil
	fresh := partial && (p.watch == watchOn || now.Sub(p.hasAt) < hasFresh)
	var out []uint64
	for i, l := range s.leaves {
		if l.phase != leafMissing {
			continue
		}
		switch {
		case fresh:
			if p.has[i] {
				out = append(out, uint64(i))
			}
		case partial:
			out = append(out, uint64(i))
		case holders[i] == 0 || now.Sub(l.waitingSince) > holderPatience:
			out = append(out, uint64(i))
		}
	}
	slices.SortFunc(out, func(a, b uint64) int {
		if holders[a] != holders[b] {
			return holders[a] - holders[b]
		}
		return s.leaves[a].rank - s.leaves[b].rank
	})
	return out
}

// steal gives p the tail half of the slowest request's remaining leaves
// (its last one, once nothing came for endgameStall: the end game) when p,
// at its measured rate (or, not measured yet, the best rate measured in
// this fetch) and round trip, would bring them in well before that request
// would (its ETA over 3x p's time plus a second). Leaves the victim
// already had in flight arrive twice, so equal providers must never steal
// from each other: a healthy multi-source fetch moves every leaf once. A
// victim left with nothing to bring is cut: a provider gone silent
// mid-leaf, or one whose own source went away, no longer holds up the last
// leaves while full providers idle.
func (s *fetchState) steal(p *peerState, now time.Time) {
	rate := p.rate
	if rate <= 0 && p.told {
		rate = s.bestRate()
	}
	if rate <= 0 {
		return
	}
	var victim *request
	var worst time.Duration
	leaf := float64(unixfs.ChunkSize)
	for _, r := range s.sorted() {
		left := r.limit - r.next
		if r.phase != reqReceiving || left < 1 || left == 1 && now.Sub(r.lastAt) < endgameStall {
			// Its last leaf is taken only once it stopped moving: one
			// that moves slowly may be held back by this node's own
			// downlink, and taken it would start again as slowly.
			continue
		}
		// Nothing moved yet: assume the first piece arrives now (not
		// "never"), so a request whose header just came in is not robbed.
		since := now.Sub(r.headerAt)
		eta := time.Duration(left) * since
		if moved := float64(r.got + r.partial); moved > 0 {
			need := max(float64(left)*leaf-float64(r.partial), 0)
			eta = time.Duration(need / (moved / since.Seconds()) * float64(time.Second))
		}
		take := max(left/2, 1)
		mine := p.rtt + time.Duration(float64(take)*leaf/rate*float64(time.Second))
		if eta > 3*mine+time.Second && eta > worst {
			victim, worst = r, eta
		}
	}
	if victim == nil {
		return
	}
	mid := victim.limit - max((victim.limit-victim.next)/2, 1)
	take := slices.Clone(victim.offered[mid:victim.limit])
	victim.limit = mid
	if victim.next >= victim.limit {
		victim.phase = reqCut
		s.out = append(s.out, doCancel{victim.id})
	}
	s.send(p, ask{leaves: take}, now)
}

// bestRate is the best rate measured of a peer in this fetch; 0: none.
func (s *fetchState) bestRate() float64 {
	best := 0.0
	for _, q := range s.peers {
		best = max(best, q.rate)
	}
	return best
}
