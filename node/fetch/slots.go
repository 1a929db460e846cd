package fetch

import (
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// slots decides which fetch streams a provider serves: how many it keeps
// open, which get one of its upload slots, and whose slot goes to a peer
// that waits. It does no I/O and reads no clock: the provider tells it
// what happened and when, and carries out its answers (provider.go).
//
// It is BitTorrent's choking (BEP 3; libtorrent's round-robin seed
// choker) fitted to a protocol of one request per stream:
//
//   - A stream is pending until its request is read, and only then may
//     take a slot: a stream that sends nothing holds no slot. Streams are
//     bounded per peer (OpenPerPeer) and in all (MaxOpen: the oldest
//     pending one makes room for a new one).
//   - A holder keeps its slot while nobody waits: with no other peer
//     asking, a fetch is never cut, however slow.
//   - When a peer asks and no slot is free, a holder is choked for it,
//     worst first: one stalled (a write to it moved no byte for Stall: its
//     requester stopped reading), one slow (under SlowRate over the last
//     RateWindow of write time), or one whose turn is over (held for Turn,
//     BitTorrent's rechoke period) when its peer holds more slots than the
//     asker. The choked stream ends with a BUSY frame; its requester asks
//     again later or elsewhere.
//   - Peers refused a slot wait in line: those holding fewer slots first
//     (one upload slot per peer, as BitTorrent's), then first refused
//     first (libtorrent unchokes the peer that waited longest). A free or
//     freed slot goes to a peer in line before a newcomer, so a peer that
//     frees and retakes slots at once cannot keep one from a peer that
//     asks every few seconds. A peer that does not ask again within
//     WaitFor (the fetcher's longest wait after BUSY, and a second) leaves
//     the line.
type slots struct {
	cfg     slotConfig
	last    streamID
	streams map[streamID]*slotStream
	open    map[peer.ID]int // streams open per peer, in any state
	holding map[peer.ID]int // slots held per peer
	held    int
	waiting map[peer.ID]waiter
}

// slotConfig are the policy's parameters; see slots.
type slotConfig struct {
	Slots       int // upload slots (ProviderOptions.MaxStreams)
	PerPeer     int // slots one peer may hold (ProviderOptions.StreamsPerPeer)
	OpenPerPeer int // streams one peer may have open: pending, served or ending
	MaxOpen     int // streams open in all
	Stall       time.Duration
	SlowRate    float64 // bytes per second
	RateWindow  time.Duration
	Turn        time.Duration
	WaitFor     time.Duration
	MaxWaiting  int // peers in line
}

// streamID names a stream in the policy; 0 is none.
type streamID uint64

type streamState uint8

const (
	statePending streamState = iota // its request is not read yet
	stateServing                    // it holds a slot
	stateChoked                     // it lost its slot and is ending
)

type slotStream struct {
	peer    peer.ID
	root    cid.Cid // the expert it asked for, once it asked
	state   streamState
	opened  time.Time
	granted time.Time
	meter   meter
}

// waiter is a peer in line: when it was first and last refused a slot.
type waiter struct{ first, last time.Time }

func newSlots(c slotConfig) *slots {
	return &slots{
		cfg: c, streams: map[streamID]*slotStream{}, open: map[peer.ID]int{},
		holding: map[peer.ID]int{}, waiting: map[peer.ID]waiter{},
	}
}

// Open registers a new stream of p, pending until its request is read. It
// refuses one when p has OpenPerPeer streams open, or when MaxOpen are
// open and none is pending; else it may evict the oldest pending stream,
// which the caller resets (its later calls are ignored).
func (s *slots) Open(p peer.ID, now time.Time) (id, evict streamID, ok bool) {
	if s.open[p] >= s.cfg.OpenPerPeer {
		return 0, 0, false
	}
	if len(s.streams) >= s.cfg.MaxOpen {
		for oid, st := range s.streams {
			if st.state == statePending && (evict == 0 || st.opened.Before(s.streams[evict].opened) ||
				st.opened.Equal(s.streams[evict].opened) && oid < evict) {
				evict = oid
			}
		}
		if evict == 0 {
			return 0, 0, false
		}
		s.Close(evict)
	}
	s.last++
	s.streams[s.last] = &slotStream{peer: p, opened: now}
	s.open[p]++
	return s.last, evict, true
}

// Ask asks a slot for a pending stream whose request for root was read. It grants
// one when a slot is free for it (free slots outnumber the peers in line
// before it), or when it can choke a holder (victim, which the caller
// ends); else it refuses, and the peer gets in line unless it already
// holds PerPeer slots.
func (s *slots) Ask(id streamID, root cid.Cid, now time.Time) (granted bool, victim streamID) {
	st := s.streams[id]
	if st == nil || st.state != statePending {
		return false, 0
	}
	st.root = root
	p := st.peer
	if s.holding[p] >= s.cfg.PerPeer {
		return false, 0
	}
	s.expire(now)
	ahead := s.ahead(p)
	free := s.cfg.Slots - s.held
	if free > ahead {
		s.grant(st, now)
		return true, 0
	}
	if victim, n := s.victim(p, now); free+n > ahead {
		s.choke(victim)
		s.grant(st, now)
		return true, victim
	}
	s.refuse(p, now)
	return false, 0
}

// Writing tells that a write to stream id begins, Wrote that it moved n
// bytes, Idle that it ended (the provider reads or waits meanwhile).
func (s *slots) Writing(id streamID, now time.Time) {
	if st := s.serving(id); st != nil {
		st.meter.writing(now)
	}
}

func (s *slots) Wrote(id streamID, n int, now time.Time) {
	if st := s.serving(id); st != nil {
		st.meter.wrote(n, now, s.cfg.RateWindow)
	}
}

func (s *slots) Idle(id streamID, now time.Time) {
	if st := s.serving(id); st != nil {
		st.meter.idle(now, s.cfg.RateWindow)
	}
}

// Close forgets a stream that ended, in any state.
func (s *slots) Close(id streamID) {
	st := s.streams[id]
	if st == nil {
		return
	}
	if st.state == stateServing {
		s.release(st)
	}
	delete(s.streams, id)
	if s.open[st.peer]--; s.open[st.peer] <= 0 {
		delete(s.open, st.peer)
	}
}

// Others reports whether peers other than stream id's are being served
// the same expert: they hold a slot for it and their writes move (neither
// stalled nor slow). This is what offer calls loaded: a requester that
// reads nothing does not make the provider split an expert between peers.
func (s *slots) Others(id streamID, now time.Time) bool {
	st := s.streams[id]
	if st == nil {
		return false
	}
	for _, o := range s.streams {
		if o.state == stateServing && o.peer != st.peer && o.root == st.root && !s.idle(o, now) {
			return true
		}
	}
	return false
}

func (s *slots) serving(id streamID) *slotStream {
	if st := s.streams[id]; st != nil && st.state == stateServing {
		return st
	}
	return nil
}

func (s *slots) grant(st *slotStream, now time.Time) {
	st.state, st.granted = stateServing, now
	s.holding[st.peer]++
	s.held++
	delete(s.waiting, st.peer)
}

func (s *slots) choke(id streamID) {
	st := s.streams[id]
	s.release(st)
	st.state = stateChoked
}

func (s *slots) release(st *slotStream) {
	s.held--
	if s.holding[st.peer]--; s.holding[st.peer] <= 0 {
		delete(s.holding, st.peer)
	}
}

// refuse puts p in line, or keeps its place there.
func (s *slots) refuse(p peer.ID, now time.Time) {
	if w, ok := s.waiting[p]; ok {
		w.last = now
		s.waiting[p] = w
		return
	}
	if len(s.waiting) < s.cfg.MaxWaiting {
		s.waiting[p] = waiter{first: now, last: now}
	}
}

// expire drops from the line the peers that stopped asking.
func (s *slots) expire(now time.Time) {
	for p, w := range s.waiting {
		if now.Sub(w.last) > s.cfg.WaitFor {
			delete(s.waiting, p)
		}
	}
}

// ahead counts the peers in line before p: those holding fewer slots,
// then those holding as many that were refused first (all of those if p
// is not in line).
func (s *slots) ahead(p peer.ID) int {
	w, queued := s.waiting[p]
	mine := s.holding[p]
	n := 0
	for q, x := range s.waiting {
		theirs := s.holding[q]
		if q != p && (theirs < mine || theirs == mine && (!queued || x.first.Before(w.first))) {
			n++
		}
	}
	return n
}

// Victim classes, in the order holders are choked.
const (
	notVictim = iota
	turnOver
	slow
	stalled
)

// victim returns the holder to choke for a stream of asker, and how many
// holders could be choked.
func (s *slots) victim(asker peer.ID, now time.Time) (streamID, int) {
	var best streamID
	var bestClass int
	var bestKey float64
	n := 0
	for id, st := range s.streams {
		if st.state != stateServing {
			continue
		}
		class, key := s.classify(st, asker, now)
		if class == notVictim {
			continue
		}
		n++
		if class > bestClass || class == bestClass && (key > bestKey || key == bestKey && id < best) {
			best, bestClass, bestKey = id, class, key
		}
	}
	return best, n
}

// classify says whether st may be choked for asker, and a key ordering the
// holders of one class, greatest first: the longest stall, the lowest
// rate, the longest hold.
func (s *slots) classify(st *slotStream, asker peer.ID, now time.Time) (class int, key float64) {
	if d := st.meter.stalled(now); d >= s.cfg.Stall {
		return stalled, d.Seconds()
	}
	if rate, ok := st.meter.rateAt(now, s.cfg.RateWindow); ok && rate < s.cfg.SlowRate {
		return slow, -rate
	}
	if held := now.Sub(st.granted); held >= s.cfg.Turn && s.holding[st.peer] > s.holding[asker] {
		return turnOver, held.Seconds()
	}
	return notVictim, 0
}

// idle reports whether a holder is stalled or slow.
func (s *slots) idle(st *slotStream, now time.Time) bool {
	class, _ := s.classify(st, st.peer, now)
	return class == stalled || class == slow
}

// meter measures a holder's rate over its write time: the time the
// provider spent in writes to it, which a requester reading slowly
// stretches and the provider's own pauses (store reads, the per-peer rate
// cap) do not.
type meter struct {
	bytes int64         // moved in the current window
	spent time.Duration // write time of the current window, before the write under way
	since time.Time     // start of the write under way; zero between writes
	moved time.Time     // when the write under way last moved a byte, or began
	rate  float64       // bytes/s over the last full window
	rated bool
}

func (m *meter) active(now time.Time) time.Duration {
	d := m.spent
	if !m.since.IsZero() {
		d += now.Sub(m.since)
	}
	return d
}

func (m *meter) writing(now time.Time) { m.since, m.moved = now, now }

func (m *meter) wrote(n int, now time.Time, window time.Duration) {
	m.bytes += int64(n)
	m.moved = now
	m.roll(now, window)
}

func (m *meter) idle(now time.Time, window time.Duration) {
	if m.since.IsZero() {
		return
	}
	m.spent += now.Sub(m.since)
	m.since = time.Time{}
	m.roll(now, window)
}

// roll starts a new window once the current one is full.
func (m *meter) roll(now time.Time, window time.Duration) {
	d := m.active(now)
	if d < window {
		return
	}
	m.rate, m.rated = float64(m.bytes)/d.Seconds(), true
	m.bytes, m.spent = 0, 0
	if !m.since.IsZero() {
		m.since = now
	}
}

// rateAt is the rate of the current window if full (a write blocked past
// its end), else of the last full one; false before the first is full.
func (m *meter) rateAt(now time.Time, window time.Duration) (float64, bool) {
	if d := m.active(now); d >= window {
		return float64(m.bytes) / d.Seconds(), true
	}
	return m.rate, m.rated
}

// stalled is how long the write under way has moved no byte.
func (m *meter) stalled(now time.Time) time.Duration {
	if m.since.IsZero() {
		return 0
	}
	return now.Sub(m.moved)
}
