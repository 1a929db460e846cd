package fetch

import (
	"fmt"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testSlotConfig is the provider's default policy with 2 slots, 1 per
// peer and room for 4 streams (2 per peer), so that tables stay short.
var testSlotConfig = slotConfig{
	Slots: 2, PerPeer: 1, OpenPerPeer: 2, MaxOpen: 4,
	Stall: 3 * time.Second, SlowRate: 32 << 10, RateWindow: 2 * time.Second,
	Turn: 10 * time.Second, WaitFor: 5 * time.Second, MaxWaiting: 3,
}

// A slotStep is one event at a time (seconds from the start) and what the
// policy must answer. Streams are numbered 1, 2, ... as opened.
//
//	open P      -> "ok", "refused" or "evict N"
//	ask N       -> "ok", "refused" or "choke N"
//	write N     a write to stream N begins
//	wrote N B   it moved B bytes
//	idle N      it ended
//	close N
type slotStep struct {
	at   float64
	op   string
	arg  string // a peer for open, else a stream
	n    int    // bytes for wrote
	want string // "" for events without an answer
}

func runSlotSteps(t *testing.T, cfg slotConfig, steps []slotStep) *slots {
	t.Helper()
	s := newSlots(cfg)
	t0 := time.Unix(1000, 0)
	for i, st := range steps {
		now := t0.Add(time.Duration(st.at * float64(time.Second)))
		var id streamID
		if st.op != "open" {
			fmt.Sscan(st.arg, &id)
		}
		var got string
		switch st.op {
		case "open":
			_, evict, ok := s.Open(peer.ID(st.arg), now)
			got = answer(ok, "evict", evict)
		case "ask":
			ok, victim := s.Ask(id, cid.Undef, now)
			got = answer(ok, "choke", victim)
		case "write":
			s.Writing(id, now)
		case "wrote":
			s.Wrote(id, st.n, now)
		case "idle":
			s.Idle(id, now)
		case "close":
			s.Close(id)
		default:
			t.Fatalf("step %d: unknown op %q", i, st.op)
		}
		if got != st.want {
			t.Fatalf("step %d (%.1fs %s %s): got %q, want %q", i, st.at, st.op, st.arg, got, st.want)
		}
		checkSlotInvariants(t, s)
	}
	return s
}

func answer(ok bool, verb string, id streamID) string {
	switch {
	case !ok:
		return "refused"
	case id != 0:
		return fmt.Sprintf("%s %d", verb, id)
	}
	return "ok"
}

// checkSlotInvariants checks the counts against the streams.
func checkSlotInvariants(t *testing.T, s *slots) {
	t.Helper()
	open, holding, held := map[peer.ID]int{}, map[peer.ID]int{}, 0
	for _, st := range s.streams {
		open[st.peer]++
		if st.state == stateServing {
			holding[st.peer]++
			held++
		}
	}
	if held != s.held || held > s.cfg.Slots || len(s.streams) > s.cfg.MaxOpen || len(s.waiting) > s.cfg.MaxWaiting {
		t.Fatalf("held %d (counted %d) of %d slots, %d streams of %d, %d waiting", held, s.held, s.cfg.Slots, len(s.streams), s.cfg.MaxOpen, len(s.waiting))
	}
	for p, n := range open {
		if s.open[p] != n || n > s.cfg.OpenPerPeer || s.holding[p] != holding[p] || holding[p] > s.cfg.PerPeer {
			t.Fatalf("peer %s: %d open (counted %d), %d slots (counted %d)", p, n, s.open[p], holding[p], s.holding[p])
		}
	}
	if len(s.open) != len(open) || len(s.holding) != len(holding) {
		t.Fatalf("counts kept for peers without streams: %v %v", s.open, s.holding)
	}
}

// hold is a stream of p opened and granted at "at", with a write under way.
func hold(at float64, p, id string) []slotStep {
	return []slotStep{{at, "open", p, 0, "ok"}, {at, "ask", id, 0, "ok"}, {at, "write", id, 0, ""}}
}

func steps(parts ...[]slotStep) []slotStep {
	var out []slotStep
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestSlotPolicy(t *testing.T) {
	wide := testSlotConfig
	wide.Slots, wide.PerPeer, wide.OpenPerPeer, wide.MaxOpen, wide.MaxWaiting = 3, 2, 4, 8, 4
	twoEach := wide
	twoEach.Slots = 2
	for _, c := range []struct {
		name  string
		cfg   *slotConfig // nil: testSlotConfig
		steps []slotStep
	}{
		{"streams that send no request hold no slot", nil, []slotStep{
			{0, "open", "a", 0, "ok"}, {0, "open", "a", 0, "ok"}, {0, "open", "b", 0, "ok"},
			{0.1, "open", "h", 0, "ok"}, {0.1, "ask", "4", 0, "ok"},
		}},
		{"streams are bounded per peer and in all; the oldest pending one makes room", nil, []slotStep{
			{0, "open", "a", 0, "ok"}, {0, "open", "a", 0, "ok"}, {0, "open", "a", 0, "refused"},
			{1, "open", "b", 0, "ok"}, {2, "open", "b", 0, "ok"},
			{3, "open", "c", 0, "evict 1"}, {3, "ask", "1", 0, "refused"}, {3, "ask", "4", 0, "ok"},
			{3, "ask", "5", 0, "ok"}, {3, "ask", "2", 0, "refused"}, {3, "close", "2", 0, ""},
			{4, "open", "d", 0, "ok"}, {4, "open", "e", 0, "evict 3"},
		}},
		{"every stream open and none pending: a new one is refused", nil, steps(
			hold(0, "a", "1"), hold(0, "b", "2"),
			[]slotStep{{4, "open", "c", 0, "ok"}, {4, "ask", "3", 0, "choke 1"}, {4, "open", "d", 0, "ok"},
				{4, "ask", "4", 0, "choke 2"}, {4, "open", "e", 0, "refused"}},
		)},
		{"a stalled holder keeps its slot while another is free", nil, steps(
			hold(0, "a", "1"),
			[]slotStep{{0, "wrote", "1", 256 << 10, ""}, {60, "open", "b", 0, "ok"}, {60, "ask", "2", 0, "ok"},
				{60, "open", "a", 0, "ok"}, {60, "ask", "3", 0, "refused"}, {120, "open", "a", 0, "refused"}},
		)},
		{"a stalled holder is choked for a peer that asks", nil, steps(
			hold(0, "a", "1"), hold(0, "b", "2"),
			[]slotStep{{0, "wrote", "1", 256 << 10, ""}, {0, "wrote", "2", 256 << 10, ""},
				{2.9, "open", "h", 0, "ok"}, {2.9, "ask", "3", 0, "refused"},
				{3.1, "wrote", "2", 32 << 10, ""},
				{3.5, "open", "h", 0, "ok"}, {3.5, "ask", "4", 0, "choke 1"},
				{3.5, "ask", "3", 0, "refused"}},
		)},
		{"a slow holder is choked for a peer that asks", nil, steps(
			hold(0, "a", "1"), hold(0, "b", "2"),
			[]slotStep{{0, "wrote", "1", 256 << 10, ""}, {0.5, "wrote", "1", 1 << 10, ""}, {1, "wrote", "1", 1 << 10, ""},
				{1.5, "wrote", "1", 1 << 10, ""}, {2, "wrote", "1", 1 << 10, ""}, // window 1: 130 KiB/s
				{2.5, "wrote", "1", 1 << 10, ""}, {3, "wrote", "1", 1 << 10, ""},
				{3.5, "wrote", "1", 1 << 10, ""}, {4, "wrote", "1", 1 << 10, ""}, // window 2: 2 KiB/s
				{0, "wrote", "2", 256 << 10, ""}, {2.5, "wrote", "2", 64 << 10, ""}, {4, "wrote", "2", 64 << 10, ""},
				{4.1, "open", "h", 0, "ok"}, {4.1, "ask", "3", 0, "choke 1"}},
		)},
		{"the provider's own pauses do not make a holder slow", nil, steps(
			hold(0, "a", "1"), hold(0, "b", "2"),
			[]slotStep{{0.1, "wrote", "1", 1 << 20, ""}, {0.1, "idle", "1", 0, ""}, {5, "write", "1", 0, ""},
				{5.1, "wrote", "1", 1 << 20, ""}, {5.1, "idle", "1", 0, ""}, {9, "write", "1", 0, ""},
				{9.05, "wrote", "1", 1 << 20, ""}, {9.05, "idle", "1", 0, ""},
				{2.5, "wrote", "2", 1 << 20, ""}, {2.5, "idle", "2", 0, ""},
				{9.5, "open", "h", 0, "ok"}, {9.5, "ask", "3", 0, "refused"}},
		)},
		{"stalled before slow before turn over", &wide, steps(
			hold(0, "t", "1"), hold(0, "s", "2"), hold(0, "x", "3"),
			[]slotStep{{0.5, "wrote", "1", 1 << 20, ""}, {0.5, "idle", "1", 0, ""}, // turn over at 10 s
				{2, "wrote", "2", 16 << 10, ""}, {4, "wrote", "2", 16 << 10, ""}, {6, "wrote", "2", 16 << 10, ""},
				{8, "wrote", "2", 16 << 10, ""}, {10, "wrote", "2", 16 << 10, ""}, {12, "wrote", "2", 16 << 10, ""},
				{14, "wrote", "2", 16 << 10, ""},                                 // slow: 8 KiB/s
				{11, "wrote", "3", 1 << 20, ""}, {11, "wrote", "3", 1 << 10, ""}, // stalled from 11 s
				{14.5, "open", "h", 0, "ok"}, {14.5, "ask", "4", 0, "choke 3"},
				{14.5, "open", "i", 0, "ok"}, {14.5, "ask", "5", 0, "choke 2"},
				{14.5, "open", "j", 0, "ok"}, {14.5, "ask", "6", 0, "choke 1"},
				{14.5, "open", "k", 0, "ok"}, {14.5, "ask", "7", 0, "refused"}},
		)},
		{"a turn is over for a peer holding fewer slots only", &twoEach, steps(
			hold(0, "a", "1"), hold(0, "b", "2"),
			[]slotStep{{0.1, "wrote", "1", 1 << 20, ""}, {0.1, "wrote", "2", 1 << 20, ""},
				{9.9, "wrote", "1", 1 << 20, ""}, {9.9, "wrote", "2", 1 << 20, ""},
				{9.9, "open", "h", 0, "ok"}, {9.9, "ask", "3", 0, "refused"},
				{10, "ask", "3", 0, "choke 1"},                              // a and b since 0 s: the first stream goes first
				{10, "open", "h", 0, "ok"}, {10, "ask", "4", 0, "refused"}}, // h holds as many as b
		)},
		{"a freed slot goes to the peer in line, not to a newcomer", nil, steps(
			hold(0, "a", "1"), hold(0, "b", "2"),
			[]slotStep{{0.1, "wrote", "1", 64 << 10, ""}, {0.1, "wrote", "2", 64 << 10, ""},
				{1, "open", "h", 0, "ok"}, {1, "ask", "3", 0, "refused"},
				{1.5, "close", "1", 0, ""}, {1.5, "open", "a", 0, "ok"}, {1.5, "ask", "4", 0, "refused"},
				{2, "open", "h", 0, "ok"}, {2, "ask", "5", 0, "ok"}},
		)},
		{"peers in line are served first refused first", nil, steps(
			hold(0, "a", "1"), hold(0, "b", "2"),
			[]slotStep{{0.1, "wrote", "1", 64 << 10, ""}, {0.1, "wrote", "2", 64 << 10, ""},
				{0.1, "idle", "1", 0, ""}, {0.1, "idle", "2", 0, ""},
				{1, "open", "x", 0, "ok"}, {1, "ask", "3", 0, "refused"}, {1, "close", "3", 0, ""},
				{2, "open", "y", 0, "ok"}, {2, "ask", "4", 0, "refused"}, {2, "close", "4", 0, ""},
				{3, "close", "1", 0, ""},
				{3.5, "open", "y", 0, "ok"}, {3.5, "ask", "5", 0, "refused"},
				{4, "open", "x", 0, "ok"}, {4, "ask", "6", 0, "ok"}, {4, "close", "5", 0, ""},
				{4, "close", "2", 0, ""}, {4.5, "open", "y", 0, "ok"}, {4.5, "ask", "7", 0, "ok"}},
		)},
		{"a peer holding fewer slots goes first in line", &twoEach, steps(
			hold(0, "a", "1"), hold(0, "b", "2"),
			[]slotStep{{0.1, "wrote", "1", 64 << 10, ""}, {0.1, "wrote", "2", 64 << 10, ""},
				{0.1, "idle", "1", 0, ""}, {0.1, "idle", "2", 0, ""},
				{1, "open", "a", 0, "ok"}, {1, "ask", "3", 0, "refused"},
				{2, "open", "h", 0, "ok"}, {2, "ask", "4", 0, "refused"},
				{3, "close", "2", 0, ""}, {3.5, "ask", "3", 0, "refused"}, {4, "ask", "4", 0, "ok"}},
		)},
		{"a peer that stops asking leaves the line", nil, steps(
			hold(0, "a", "1"), hold(0, "b", "2"),
			[]slotStep{{0.1, "wrote", "1", 64 << 10, ""}, {0.1, "wrote", "2", 64 << 10, ""},
				{0.1, "idle", "1", 0, ""}, {0.1, "idle", "2", 0, ""},
				{1, "open", "x", 0, "ok"}, {1, "ask", "3", 0, "refused"}, {1, "close", "3", 0, ""},
				{2, "close", "1", 0, ""},
				{5.9, "open", "n", 0, "ok"}, {5.9, "ask", "4", 0, "refused"}, {5.9, "close", "4", 0, ""},
				{6.1, "open", "m", 0, "ok"}, {6.1, "ask", "5", 0, "refused"}, // n is in line now
				{6.2, "open", "n", 0, "ok"}, {6.2, "ask", "6", 0, "ok"}},
		)},
		{"the line is bounded; a peer left out waits behind it", nil, steps(
			hold(0, "a", "1"), hold(0, "b", "2"),
			[]slotStep{{0.1, "wrote", "1", 256 << 10, ""}, {0.1, "wrote", "2", 256 << 10, ""},
				{1, "open", "w", 0, "ok"}, {1, "ask", "3", 0, "refused"}, {1, "close", "3", 0, ""},
				{1, "open", "x", 0, "ok"}, {1, "ask", "4", 0, "refused"}, {1, "close", "4", 0, ""},
				{1, "open", "y", 0, "ok"}, {1, "ask", "5", 0, "refused"}, {1, "close", "5", 0, ""},
				{1, "open", "z", 0, "ok"}, {1, "ask", "6", 0, "refused"}, {1, "close", "6", 0, ""},
				{2, "wrote", "1", 256 << 10, ""}, {2, "wrote", "2", 256 << 10, ""},
				{4, "wrote", "2", 256 << 10, ""}, {4, "close", "1", 0, ""},
				{5.5, "open", "z", 0, "ok"}, {5.5, "ask", "7", 0, "refused"}, {5.5, "close", "7", 0, ""},
				{6.5, "open", "z", 0, "ok"}, {6.5, "ask", "8", 0, "ok"}}, // w, x, y stopped asking
		)},
		{"a peer at its own limit neither asks for more nor gets in line", nil, steps(
			hold(0, "a", "1"),
			[]slotStep{{0, "wrote", "1", 256 << 10, ""}, {0, "open", "a", 0, "ok"}, {5, "ask", "2", 0, "refused"},
				{5, "open", "b", 0, "ok"}, {5, "ask", "3", 0, "ok"}},
		)},
		{"a choked stream holds no slot but stays open until it ends", nil, steps(
			hold(0, "a", "1"), hold(0, "b", "2"),
			[]slotStep{{4, "open", "h", 0, "ok"}, {4, "ask", "3", 0, "choke 1"}, {4, "open", "a", 0, "ok"},
				{4, "open", "a", 0, "refused"}, {4, "write", "1", 0, ""}, {4, "wrote", "1", 1, ""},
				{4, "close", "1", 0, ""}, {4, "open", "a", 0, "ok"}},
		)},
	} {
		cfg := testSlotConfig
		if c.cfg != nil {
			cfg = *c.cfg
		}
		t.Run(c.name, func(t *testing.T) { runSlotSteps(t, cfg, c.steps) })
	}
}

// Others: whether another peer is being served the same expert, and its
// writes move.
func TestSlotOthers(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }
	root := fetchtestRoot(t, 1)
	other := fetchtestRoot(t, 2)
	s := newSlots(testSlotConfig)
	s.cfg.Slots = 4
	a, _, _ := s.Open("a", at(0))
	b, _, _ := s.Open("b", at(0))
	c, _, _ := s.Open("c", at(0))
	s.Ask(a, root, at(0))
	s.Writing(a, at(0))
	if s.Others(a, at(0)) {
		t.Fatal("a alone holds a slot, yet sees another")
	}
	s.Ask(b, root, at(0))
	s.Ask(c, other, at(0))
	if !s.Others(a, at(0)) || !s.Others(b, at(0)) || s.Others(c, at(0)) {
		t.Fatal("a and b are served one expert, c another: a and b should see each other, c none")
	}
	s.Wrote(a, 1<<20, at(0.5))
	if !s.Others(b, at(3.4)) || s.Others(b, at(3.6)) {
		t.Fatal("a writes nothing from 0.5 s: b should see it served until a 3 s stall, and not after")
	}
}

// fetchtestRoot is a CID of a small random expert.
func fetchtestRoot(t *testing.T, seed uint64) cid.Cid {
	return addFile(t, newMem(), randomBytes(100, seed)).Root
}

func TestMeter(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	const w = 2 * time.Second
	var m meter
	if _, ok := m.rateAt(at(0), w); ok || m.stalled(at(5)) != 0 {
		t.Fatal("a meter that never wrote has a rate or a stall")
	}
	m.writing(at(0))
	m.wrote(100<<10, at(1), w)
	m.idle(at(1), w)
	if _, ok := m.rateAt(at(30), w); ok {
		t.Fatal("idle time counted as write time")
	}
	m.writing(at(30))
	if m.stalled(at(31.5)) != 1500*time.Millisecond {
		t.Fatalf("stalled %v, want 1.5s", m.stalled(at(31.5)))
	}
	// 100 KiB in 1 s, then nothing for 1 s: the window closes at 50 KiB/s.
	if r, ok := m.rateAt(at(31), w); !ok || r != 50<<10 {
		t.Fatalf("rate %v %v, want 50 KiB/s", r, ok)
	}
	m.wrote(8<<10, at(33), w) // rolls: 108 KiB over 4 s of write time
	if r, ok := m.rateAt(at(33), w); !ok || r != 27<<10 {
		t.Fatalf("rate %v %v, want 27 KiB/s", r, ok)
	}
	if r, _ := m.rateAt(at(36), w); r != 0 {
		t.Fatalf("a write blocked for a whole window: rate %v, want 0", r)
	}
}
