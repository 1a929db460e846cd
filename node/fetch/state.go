package fetch

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/unixfs"
)

// fetchState is one fetch's scheduler: which leaves to ask of which
// provider, when to ask again, when to give up. It does no I/O and reads
// no clock: apply tells it what happened and when, and it answers with
// the actions to take (ask a provider, cancel a request, drop a peer,
// report progress, finish). The loop in fetcher.go carries them out.
// Its policy (plan, candidates, steal) is in schedule.go.
type fetchState struct {
	cfg  stateConfig
	root cid.Cid
	rng  *rand.Rand // nil (tests): peers in ID order, leaves in index order, no jitter

	layout   *unixfs.Layout // nil until the first header (or the local nodes) told it
	leaves   []leafState
	held     int      // leaves held
	missing  int      // leaves missing
	bytes    uint64   // bytes of the leaves held
	nparts   uint32   // the shares the fetch was split in while the layout was unknown
	parts    []uint32 // shares to ask for again: their request failed before any header
	peers    map[peer.ID]*peerState
	requests map[reqID]*request
	lastID   reqID
	lastErr  error // why the last peer was dropped

	deadline   time.Time // zero until the layout is known
	progressAt time.Time // start, the layout, the last header offering leaves, or the last new leaf
	done       bool
	out        []action // what apply answers
}

// stateConfig is what a fetch's scheduler needs of the Options.
type stateConfig struct {
	self         peer.ID // never asked
	maxProviders int     // requests at once
	stall        time.Duration
	minRate      float64 // bytes/s: sets the deadline once the size is known
}

// A leaf of ours is missing (nobody is asked for it), requested (one
// request, its owner, is to bring it) or held (verified and stored here).
type leafPhase uint8

const (
	leafMissing leafPhase = iota
	leafRequested
	leafHeld
)

type leafState struct {
	phase leafPhase
	owner *request // leafRequested: the request to bring it
	// waitingSince is when a missing leaf was first planned for (an idle
	// peer could have been asked for it); zero until then. Partial
	// holders that have it get holderPatience from then.
	waitingSince time.Time
	rank         int // a random order of the leaves: ties in rarity break by it
}

// A peer is idle (it may be asked), active (one request to it runs), busy
// (it answered BUSY: asked again after retryAt) or failed (it failed or
// sent a bad block: not asked again in this fetch).
type peerPhase uint8

const (
	peerIdle peerPhase = iota
	peerActive
	peerBusy
	peerFailed
)

type peerState struct {
	id      peer.ID
	phase   peerPhase
	req     *request      // peerActive: the request to it
	retryAt time.Time     // peerBusy: when it becomes idle again
	backoff time.Duration // the wait after its last BUSY; doubles up to maxBusyWait
	// has is what a partial holder said it has, at hasAt; nil: a full
	// provider, or one that has not told yet (told false).
	has     []bool
	hasAt   time.Time
	told    bool          // it said what it holds (a header, or its watch's)
	watch   watchPhase    // its watch: what it holds, as it changes (have.go)
	watchAt time.Time     // when its watch was asked
	rate    float64       // bytes/s of its last finished request; 0: none yet
	rtt     time.Duration // its last request's time to header
	err     error         // peerFailed: why
}

// A peer's watch is none (not asked), asked (no header yet), on (its
// holdings are current) or over (it ended: what it holds goes stale).
type watchPhase uint8

const (
	watchNone watchPhase = iota
	watchAsked
	watchOn
	watchOver
)

// A request is sent (waiting for its header), receiving (the header came:
// the offered leaves arrive in order) or cut (we cancelled it once it
// brought offered[:limit]; waiting for its end). It is forgotten at its
// end.
type reqPhase uint8

const (
	reqSent reqPhase = iota
	reqReceiving
	reqCut
)

type reqID uint64

type request struct {
	id      reqID
	peer    *peerState
	phase   reqPhase
	ask     ask
	offered []uint64 // reqReceiving, reqCut: the leaves the provider sends, in order
	next    int      // index into offered of the next leaf to arrive
	limit   int      // it is to bring offered[:limit]; the rest was stolen
	sentAt  time.Time
	// openedAt is when its stream opened and the request went out (zero
	// until then): silence counts from it.
	openedAt time.Time
	// headerAt is when its header came, got the bytes of the leaves it
	// brought since: its rate.
	headerAt time.Time
	got      uint64
	partial  uint64    // bytes of pieces verified of the leaf under way (evPiece)
	lastAt   time.Time // its header or last leaf: when it last moved
	inPieces bool      // its leaves arrive in pieces (evPiece): piecePatience applies
	// silent is set when we gave up on it for saying nothing (silence):
	// its end is its provider's failure.
	silent error
}

func newFetchState(cfg stateConfig, root cid.Cid, rng *rand.Rand) *fetchState {
	return &fetchState{cfg: cfg, root: root, rng: rng, peers: map[peer.ID]*peerState{}, requests: map[reqID]*request{}}
}

// apply takes in what happened at now and returns what to do. After a
// doFinish it returns nothing.
func (s *fetchState) apply(ev event, now time.Time) []action {
	if s.done {
		return nil
	}
	s.out = nil
	switch ev := ev.(type) {
	case evStart:
		s.start(ev, now)
	case evLayout:
		s.learn(ev, now)
	case evTick:
		s.tick(ev, now)
	case evOpened:
		if r := s.requests[ev.req]; r != nil && r.phase == reqSent {
			r.openedAt = now
		}
	case evHeader:
		s.header(ev, now)
	case evLeaf:
		s.leaf(ev, now)
	case evPiece:
		if r := s.requests[ev.req]; r != nil && r.phase == reqReceiving {
			r.lastAt, r.inPieces = now, true
			r.partial += PieceSize
		}
	case evEnd:
		s.end(ev, now)
	case evHave:
		s.have(ev, now)
	case evWatchEnd:
		if p := s.peers[ev.peer]; p != nil {
			p.watch = watchOver
		}
	}
	if !s.done && s.complete() {
		s.finish(nil)
	}
	if !s.done {
		s.plan(now)
		s.verdict(now)
	}
	return s.out
}

func (s *fetchState) start(ev evStart, now time.Time) {
	if ev.layout != nil {
		s.learn(evLayout{layout: ev.layout, held: ev.held}, now)
	}
	if s.complete() {
		return
	}
	s.addPeers(ev.peers)
	idle := s.count(peerIdle)
	if idle == 0 {
		s.finish(fmt.Errorf("%w for %s", ErrNoProviders, s.root))
		return
	}
	if s.layout != nil {
		s.report()
	} else {
		// One share per provider, up to MaxProviders: one round trip
		// splits the fetch without knowing the leaf count.
		s.nparts = uint32(min(idle, s.cfg.maxProviders))
		for i := range s.nparts {
			s.parts = append(s.parts, i)
		}
	}
	s.progressAt = now
}

// learn takes in the layout: its leaves held here, those of the shares
// being asked requested, the others (shares whose request failed before
// any header) missing.
func (s *fetchState) learn(ev evLayout, now time.Time) {
	if s.layout != nil {
		return
	}
	l := ev.layout
	s.layout = l
	s.leaves = make([]leafState, len(l.Leaves)) // all missing
	s.missing = len(s.leaves)
	rank := s.perm(len(l.Leaves))
	for i := range s.leaves {
		s.leaves[i].rank = rank[i]
		if ev.held != nil && ev.held[i] {
			s.setLeaf(uint64(i), leafHeld, nil)
			s.bytes += l.Leaves[i].Size
		}
	}
	for _, r := range s.sorted() {
		for _, i := range r.ask.asked(uint64(len(s.leaves))) {
			if s.leaves[i].phase == leafMissing {
				s.setLeaf(i, leafRequested, r)
			}
		}
	}
	s.parts = nil
	s.deadline = now.Add(30*time.Second + time.Duration(float64(l.Size)/s.cfg.minRate*float64(time.Second)))
	s.progressAt = now
}

// tick wakes the busy peers whose wait is over and takes in new ones.
func (s *fetchState) tick(ev evTick, now time.Time) {
	for _, p := range s.peers {
		if p.phase == peerBusy && !now.Before(p.retryAt) {
			p.phase = peerIdle
		}
	}
	s.addPeers(ev.peers)
	s.silence(now)
}

// silence gives up on the requests whose provider went silent (killed,
// or cut off): no header within headerPatience (or five of its round
// trips) of its stream opening (the dial, and the wait for a direct
// connection, are bounded on their own and fail with their own errors),
// or no leaf within leafPatience of the last. Their leaves are
// asked of others at once, and the provider is dropped when its stream
// ends; without this they would wait for the stream's IdleTimeout.
func (s *fetchState) silence(now time.Time) {
	for _, r := range s.sorted() {
		var err error
		switch {
		case r.phase == reqSent && !r.openedAt.IsZero() && now.Sub(r.openedAt) > max(headerPatience, 5*r.peer.rtt):
			err = fmt.Errorf("%w: no answer in %v", errSilent, now.Sub(r.openedAt).Round(time.Millisecond))
		case r.phase == reqReceiving && r.next < r.limit && r.inPieces && now.Sub(r.lastAt) > piecePatience:
			err = fmt.Errorf("%w: no piece in %v", errSilent, now.Sub(r.lastAt).Round(time.Millisecond))
		case r.phase == reqReceiving && r.next < r.limit && now.Sub(r.lastAt) > leafPatience:
			err = fmt.Errorf("%w: no leaf in %v", errSilent, now.Sub(r.lastAt).Round(time.Millisecond))
		}
		if err == nil {
			continue
		}
		for i := range s.leaves {
			if s.leaves[i].owner == r {
				s.setLeaf(uint64(i), leafMissing, nil)
			}
		}
		r.phase, r.silent = reqCut, err
		s.out = append(s.out, doCancel{r.id})
	}
}

func (s *fetchState) header(ev evHeader, now time.Time) {
	r := s.requests[ev.req]
	if r == nil || r.phase != reqSent || s.layout == nil {
		return
	}
	r.phase, r.offered, r.limit, r.headerAt, r.lastAt = reqReceiving, ev.offered, len(ev.offered), now, now
	if len(ev.offered) > 0 {
		s.progressAt = now
	}
	p := r.peer
	p.rtt = now.Sub(r.sentAt)
	if !r.openedAt.IsZero() { // not the dial, nor the wait for a direct connection
		p.rtt = now.Sub(r.openedAt)
	}
	s.holds(p, ev.has, now)
	// What was asked but not offered is missing again.
	offered := make(map[uint64]bool, len(ev.offered))
	for _, i := range ev.offered {
		offered[i] = true
	}
	for _, i := range r.ask.asked(uint64(len(s.leaves))) {
		if !offered[i] && s.leaves[i].owner == r {
			// Not a failure: its holders get their patience anew.
			s.setLeaf(i, leafMissing, nil)
			s.leaves[i].waitingSince = time.Time{}
		}
	}
	s.report()
}

func (s *fetchState) leaf(ev evLeaf, now time.Time) {
	r := s.requests[ev.req]
	if r == nil || r.phase == reqSent || ev.index >= uint64(len(s.leaves)) {
		return
	}
	r.next++
	r.got += uint64(ev.size)
	r.partial = 0
	r.lastAt = now
	if s.leaves[ev.index].phase != leafHeld {
		s.setLeaf(ev.index, leafHeld, nil)
		s.bytes += uint64(ev.size)
		s.progressAt = now
		s.report()
	}
	if r.phase == reqReceiving && r.next >= r.limit && r.limit < len(r.offered) {
		// The rest was stolen: stop here.
		r.phase = reqCut
		s.out = append(s.out, doCancel{r.id})
	}
}

func (s *fetchState) end(ev evEnd, now time.Time) {
	r := s.requests[ev.req]
	if r == nil {
		return
	}
	delete(s.requests, r.id)
	p := r.peer
	p.req = nil
	// The leaves it was to bring are missing again.
	for i := range s.leaves {
		if s.leaves[i].owner == r {
			s.setLeaf(uint64(i), leafMissing, nil)
		}
	}
	if s.layout == nil && r.ask.isShare() {
		s.parts = append(s.parts, r.ask.part)
	}
	switch {
	case r.silent != nil:
		p.phase, p.err = peerFailed, r.silent
		s.lastErr = r.silent
		s.out = append(s.out, doDrop{peer: p.id, err: r.silent})
	case ev.err == nil || r.phase == reqCut || errors.Is(ev.err, errMoved):
		// Done, cut by us, or moved to a direct connection (relay.go).
		p.phase, p.backoff = peerIdle, 0
		if d := now.Sub(r.headerAt); r.got > 0 && r.phase != reqSent && d > 0 {
			p.rate = float64(r.got) / d.Seconds()
		}
	case errors.Is(ev.err, ErrBusy):
		// Serving others (or it choked us): ask again later, not a
		// failure. When it said when, then (spread over twice that, as
		// others were told the same); else after a wait that doubles.
		var be *busyError
		if errors.As(ev.err, &be) && be.retry > 0 {
			p.phase, p.retryAt = peerBusy, now.Add(be.retry+s.jitter(be.retry))
			break
		}
		p.backoff = min(2*p.backoff, maxBusyWait)
		if p.backoff == 0 {
			p.backoff = minBusyWait
		}
		p.phase, p.retryAt = peerBusy, now.Add(p.backoff/2+s.jitter(p.backoff/2))
	default:
		p.phase, p.err = peerFailed, ev.err
		s.lastErr = ev.err
		s.out = append(s.out, doDrop{peer: p.id, err: ev.err, bad: errors.Is(ev.err, ErrVerify)})
	}
}

// verdict ends a fetch nothing is left to wait for, one without progress
// for cfg.stall, and one past its deadline.
func (s *fetchState) verdict(now time.Time) {
	n := len(s.leaves)
	switch {
	case len(s.requests) == 0 && s.count(peerBusy) == 0 && !s.holderIdle():
		err := s.lastErr
		if err == nil {
			err = ErrNoProviders
		}
		s.finish(fmt.Errorf("%w: %s: %d of %d leaves: %w", ErrIncomplete, s.root, s.held, n, err))
	case now.Sub(s.progressAt) > s.cfg.stall:
		// Busy providers, partial holders that lack the rest or answer
		// with nothing: they were waited for, but not forever.
		s.finish(fmt.Errorf("%w: %s: %d of %d leaves, none for %v: providers busy, slow or with nothing more", ErrIncomplete, s.root, s.held, n, s.cfg.stall))
	case !s.deadline.IsZero() && now.After(s.deadline):
		s.finish(fmt.Errorf("%w: %s: timed out with %d of %d leaves", ErrIncomplete, s.root, s.held, n))
	}
}

func (s *fetchState) complete() bool { return s.layout != nil && s.held == len(s.leaves) }

func (s *fetchState) finish(err error) {
	s.done = true
	s.out = append(s.out, doFinish{err})
}

func (s *fetchState) report() {
	if s.layout != nil {
		s.out = append(s.out, doProgress{Progress{Bytes: s.bytes, Total: s.layout.Size, Leaves: s.held, OfLeaf: len(s.leaves)}})
	}
}

// setLeaf moves leaf i to phase, keeping the counts.
func (s *fetchState) setLeaf(i uint64, phase leafPhase, owner *request) {
	l := &s.leaves[i]
	s.count1(l.phase, -1)
	l.phase, l.owner = phase, owner
	if phase == leafHeld {
		// A leaf that goes back to missing as its request failed waited
		// since it was first planned for: its holders had their patience.
		l.waitingSince = time.Time{}
	}
	s.count1(phase, 1)
}

func (s *fetchState) count1(phase leafPhase, d int) {
	switch phase {
	case leafHeld:
		s.held += d
	case leafMissing:
		s.missing += d
	}
}

// sorted lists the running requests, oldest first.
func (s *fetchState) sorted() []*request {
	rs := make([]*request, 0, len(s.requests))
	for _, r := range s.requests {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b *request) int { return cmp.Compare(a.id, b.id) })
	return rs
}

func (s *fetchState) perm(n int) []int {
	if s.rng == nil {
		p := make([]int, n)
		for i := range p {
			p[i] = i
		}
		return p
	}
	return s.rng.Perm(n)
}

func (s *fetchState) jitter(d time.Duration) time.Duration {
	if s.rng == nil || d <= 0 {
		return 0
	}
	return time.Duration(s.rng.Int64N(int64(d)))
}
