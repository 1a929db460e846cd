package fetch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The scheduler's policy, event by event, without a network: each case
// feeds a fetchState events at times since its start and checks the
// actions it answers (rendered by show) and its invariants after every
// event. The peers are A, B, C...; leaves are 1 MiB; with no random
// source, peers are taken in name order and leaves in index order.

// step is one event at a time since the start, and the actions wanted.
type step struct {
	at   time.Duration
	ev   event
	want []string
}

// stateCase is a scheduler scenario.
type stateCase struct {
	name   string
	leaves int    // the expert's leaves
	held   []bool // held here at the start (nil: the layout is unknown until a header)
	max    int    // MaxProviders (default 8)
	stall  time.Duration
	// minRate sets the deadline (default 64 KiB/s).
	minRate float64
	steps   []step
}

var (
	errGone  = errors.New("connection reset")
	errBusy  = fmt.Errorf("%w: all 8 upload slots taken", ErrBusy)
	errLiar  = fmt.Errorf("%w: provider offers none of the asked leaves it says it has", ErrFrame)
	errBlock = fmt.Errorf("%w: leaf 2: block does not match its CID", ErrVerify)
)

const ms = time.Millisecond

var stateCases = []stateCase{
	{name: "one provider: one share, its header tells the layout, then its leaves", leaves: 3, steps: []step{
		{0, start("A"), []string{"send #1 A share 0/1"}},
		{100 * ms, header(1, span(0, 3), nil), []string{"progress 0/3"}},
		{200 * ms, leafIn(1, 0), []string{"progress 1/3"}},
		{300 * ms, leafIn(1, 1), []string{"progress 2/3"}},
		{400 * ms, leafIn(1, 2), []string{"progress 3/3", "done"}},
	}},
	{name: "no provider", leaves: 3, steps: []step{
		{0, start(), []string{"fail: fetch: no usable provider for R"}},
	}},
	{name: "one share per provider, MaxProviders at once", leaves: 8, max: 2, steps: []step{
		{0, start("A", "B", "C"), []string{"send #1 A share 0/2", "send #2 B share 1/2"}},
	}},
	{name: "resume: only the missing leaves, split between the providers", leaves: 6, held: bits(6, span(0, 2)), steps: []step{
		{0, start("A", "B"), []string{"progress 2/6", "send #1 A leaves 2-3", "send #2 B leaves 4-5"}},
	}},
	{name: "the share of a provider that failed before any header is asked for once the layout is known", leaves: 4, max: 2, steps: []step{
		{0, start("A", "B"), []string{"send #1 A share 0/2", "send #2 B share 1/2"}},
		{50 * ms, end(1, ErrNotFound), []string{"drop A"}},
		{100 * ms, header(2, span(2, 4), nil), []string{"progress 0/4"}},
		{200 * ms, leafIn(2, 2), []string{"progress 1/4"}},
		{300 * ms, leafIn(2, 3), []string{"progress 2/4"}},
		{300 * ms, end(2, nil), []string{"send #3 B leaves 0-1"}},
	}},
	{name: "while the layout is unknown, the share of a provider that failed goes to an idle one", leaves: 4, max: 2, steps: []step{
		{0, start("A", "B", "C"), []string{"send #1 A share 0/2", "send #2 B share 1/2"}},
		{50 * ms, end(1, ErrNotFound), []string{"drop A", "send #3 C share 0/2"}},
	}},
	{name: "leaves asked and not offered (a loaded provider) are asked again", leaves: 4, steps: []step{
		{0, start("A"), []string{"send #1 A share 0/1"}},
		{100 * ms, header(1, span(0, 1), nil), []string{"progress 0/4"}},
		{200 * ms, leafIn(1, 0), []string{"progress 1/4"}},
		{200 * ms, end(1, nil), []string{"send #2 A leaves 1-3"}},
	}},
	{name: "steal: an idle fast provider takes the tail of a slow request, which is cut there", leaves: 12, held: bits(12), max: 2, steps: []step{
		{0, start("A", "B"), []string{"progress 0/12", "send #1 A leaves 0-5", "send #2 B leaves 6-11"}},
		{100 * ms, header(1, span(0, 6), nil), []string{"progress 0/12"}},
		{100 * ms, header(2, span(6, 12), nil), []string{"progress 0/12"}},
		{200 * ms, leafIn(2, 6), []string{"progress 1/12"}},
		{300 * ms, leafIn(2, 7), []string{"progress 2/12"}},
		{400 * ms, leafIn(2, 8), []string{"progress 3/12"}},
		{500 * ms, leafIn(2, 9), []string{"progress 4/12"}},
		{600 * ms, leafIn(2, 10), []string{"progress 5/12"}},
		{600 * ms, leafIn(1, 0), []string{"progress 6/12"}},
		// B: 6 MiB in 0.6 s after a 0.1 s round trip; A: 1 MiB in 0.6 s
		// with 5 to go. B takes A's last two.
		{700 * ms, leafIn(2, 11), []string{"progress 7/12"}},
		{700 * ms, end(2, nil), []string{"send #3 B leaves 4-5"}},
		{800 * ms, leafIn(1, 1), []string{"progress 8/12"}},
		{900 * ms, leafIn(1, 2), []string{"progress 9/12"}},
		{1000 * ms, leafIn(1, 3), []string{"progress 10/12", "cancel #1"}},
		{1000 * ms, end(1, context.Canceled), nil}, // cut by us: no failure
		{1100 * ms, header(3, span(4, 6), nil), []string{"progress 10/12"}},
		{1200 * ms, leafIn(3, 4), []string{"progress 11/12"}},
		{1300 * ms, leafIn(3, 5), []string{"progress 12/12", "done"}},
	}},
	// A is farther away than B (its header comes 300 ms later) but as
	// fast: when B is done, A has three leaves to go, and B does not take
	// them (it would save a little, and the leaves in flight would come
	// twice).
	// As in the steal above, A has five leaves to go at 1 MiB in 0.6 s,
	// but B's round trip is 0.7 s: B would not bring them much sooner.
	{name: "a far provider does not steal what it would bring no sooner", leaves: 12, held: bits(12), max: 2, steps: []step{
		{0, start("A", "B"), []string{"progress 0/12", "send #1 A leaves 0-5", "send #2 B leaves 6-11"}},
		{200 * ms, header(1, span(0, 6), nil), []string{"progress 0/12"}},
		{500 * ms, leafIn(1, 0), []string{"progress 1/12"}},
		{700 * ms, header(2, span(6, 12), nil), []string{"progress 1/12"}},
		{720 * ms, leafIn(2, 6), []string{"progress 2/12"}},
		{740 * ms, leafIn(2, 7), []string{"progress 3/12"}},
		{760 * ms, leafIn(2, 8), []string{"progress 4/12"}},
		{780 * ms, leafIn(2, 9), []string{"progress 5/12"}},
		{800 * ms, leafIn(2, 10), []string{"progress 6/12"}},
		{800 * ms, leafIn(2, 11), []string{"progress 7/12"}},
		{800 * ms, end(2, nil), nil},
	}},
	{name: "equal providers never steal from each other", leaves: 12, held: bits(12), max: 2, steps: []step{
		{0, start("A", "B"), []string{"progress 0/12", "send #1 A leaves 0-5", "send #2 B leaves 6-11"}},
		{100 * ms, header(2, span(6, 12), nil), []string{"progress 0/12"}},
		{200 * ms, leafIn(2, 6), []string{"progress 1/12"}},
		{300 * ms, leafIn(2, 7), []string{"progress 2/12"}},
		{400 * ms, header(1, span(0, 6), nil), []string{"progress 2/12"}},
		{400 * ms, leafIn(2, 8), []string{"progress 3/12"}},
		{500 * ms, leafIn(1, 0), []string{"progress 4/12"}},
		{500 * ms, leafIn(2, 9), []string{"progress 5/12"}},
		{600 * ms, leafIn(1, 1), []string{"progress 6/12"}},
		{600 * ms, leafIn(2, 10), []string{"progress 7/12"}},
		{700 * ms, leafIn(1, 2), []string{"progress 8/12"}},
		{700 * ms, leafIn(2, 11), []string{"progress 9/12"}},
		{700 * ms, end(2, nil), nil},
	}},
	{name: "a full provider takes what no partial holder has", leaves: 8, held: bits(8), steps: []step{
		{0, start("P"), []string{"progress 0/8", "send #1 P leaves 0-7"}},
		{100 * ms, header(1, span(0, 6), bits(8, span(0, 6))), []string{"progress 0/8", "watch P"}},
		// F joins: its watch says it holds every leaf.
		{250 * ms, tick("P", "F"), []string{"watch F"}},
		{350 * ms, watched("F", nil), []string{"send #2 F leaves 6-7"}},
	}},
	{name: "patience: a leaf a partial holder has waits 2 s for it before a full provider takes it", leaves: 4, held: bits(4), steps: []step{
		{0, start("P"), []string{"progress 0/4", "send #1 P leaves 0-3"}},
		// P says it has every leaf but offers one at a time.
		{100 * ms, header(1, span(0, 1), bits(4, span(0, 4))), []string{"progress 0/4", "watch P"}},
		{250 * ms, tick("P", "F"), []string{"watch F"}},
		{300 * ms, watched("F", nil), nil},
		{1500 * ms, tick("P", "F"), nil},
		{2400 * ms, tick("P", "F"), []string{"send #2 F leaves 1-3"}},
	}},
	{name: "rarest first: a fair share of the leaves fewest partial holders have", leaves: 6, held: bits(6), steps: []step{
		{0, start("P", "Q"), []string{"progress 0/6", "send #1 P leaves 0-2", "send #2 Q leaves 3-5"}},
		// Both say what they have, then choke us: they are busy a while.
		{50 * ms, header(1, span(0, 1), bits(6, span(0, 4))), []string{"progress 0/6", "watch P"}},
		{50 * ms, header(2, span(4, 5), bits(6, span(0, 2), span(4, 5))), []string{"progress 0/6", "watch Q"}},
		{100 * ms, end(1, errBusy), nil},
		{100 * ms, end(2, errBusy), nil},
		// Holders per leaf: 2 2 1 1 1 0. A full provider gets what none
		// has; the rest waits for its holders.
		{200 * ms, tick("P", "Q", "F", "G"), []string{"send #3 F leaves 5"}},
		{250 * ms, tick("P", "Q", "F", "G"), []string{"watch G"}},
		{280 * ms, header(3, span(5, 6), nil), []string{"progress 0/6"}},
		{300 * ms, watched("G", nil), nil},
		// Past the patience, P and Q (partial, so first; what they said
		// is stale, as their watches said nothing, so any leaf) and G
		// share them out, rarest first.
		{2300 * ms, tick("P", "Q", "F", "G"), []string{"send #4 P leaves 2-3", "send #5 Q leaves 0,4", "send #6 G leaves 1"}},
	}},
	{name: "a failed partial holder is waited for no more", leaves: 2, held: bits(2), steps: []step{
		{0, start("P"), []string{"progress 0/2", "send #1 P leaves 0-1"}},
		{100 * ms, header(1, span(0, 1), bits(2, span(0, 2))), []string{"progress 0/2", "watch P"}},
		{200 * ms, tick("P", "F"), []string{"watch F"}},
		{300 * ms, end(1, errGone), []string{"drop P", "send #2 F leaves 0-1"}},
	}},
	{name: "a watch says what a joining partial holder has: it is asked for that, and for each leaf it comes to hold", leaves: 4, held: bits(4), steps: []step{
		{0, start("P"), []string{"progress 0/4", "send #1 P leaves 0-3"}},
		{100 * ms, header(1, span(0, 1), nil), []string{"progress 0/4"}}, // P is loaded: one leaf
		// Q joins: not asked before its watch says what it holds.
		{250 * ms, tick("P", "Q"), []string{"watch Q"}},
		{350 * ms, watched("Q", bits(4, span(2, 3))), []string{"send #2 Q leaves 2"}},
		{400 * ms, nowHas("Q", 3), nil}, // busy with our request
		{500 * ms, leafIn(1, 0), []string{"progress 1/4"}},
		{500 * ms, end(1, nil), []string{"send #3 P leaves 1"}}, // 3 waits for Q, its holder
		{600 * ms, header(2, span(2, 3), bits(4, span(2, 4))), []string{"progress 1/4"}},
		{700 * ms, leafIn(2, 2), []string{"progress 2/4"}},
		// Long after hasFresh, what Q's watch said is still current.
		{3 * time.Second, end(2, nil), []string{"send #4 Q leaves 3"}},
	}},
	{name: "a watch that says nothing in watchPatience: the peer is asked blind", leaves: 4, held: bits(4), steps: []step{
		{0, start("P"), []string{"progress 0/4", "send #1 P leaves 0-3"}},
		{100 * ms, header(1, span(0, 1), bits(4, span(0, 1))), []string{"progress 0/4", "watch P"}},
		{250 * ms, tick("P", "Q"), []string{"watch Q"}},
		{1000 * ms, tick("P", "Q"), nil},
		{1300 * ms, tick("P", "Q"), []string{"send #2 Q leaves 1-3"}},
	}},
	{name: "a partial holder whose watch says it holds every leaf is a full provider", leaves: 4, held: bits(4), max: 1, steps: []step{
		{0, start("P"), []string{"progress 0/4", "send #1 P leaves 0-3"}},
		{100 * ms, header(1, span(0, 1), bits(4, span(0, 1))), []string{"progress 0/4", "watch P"}},
		{150 * ms, watched("P", bits(4, span(0, 1))), nil},
		{200 * ms, nowHas("P", 1, 2), nil},
		{300 * ms, hasAll("P"), nil},
		{400 * ms, leafIn(1, 0), []string{"progress 1/4"}},
		{400 * ms, end(1, nil), []string{"send #2 P leaves 1-3"}},
	}},
	{name: "the peers known are bounded (knownPerSlot x MaxProviders)", leaves: 2, max: 1, steps: []step{
		{0, start("A", "B", "C", "D", "E"), []string{"send #1 A share 0/1"}},
		{100 * ms, tick("A", "B", "C", "D", "E"), nil},
	}},
	{name: "this node is never asked", leaves: 2, max: 2, steps: []step{
		{0, start("self", "t"), []string{"send #1 t share 0/1"}},
	}},
	{name: "a partial holder is asked for what it said it has, and after hasFresh for anything", leaves: 4, held: bits(4), steps: []step{
		{0, start("P"), []string{"progress 0/4", "send #1 P leaves 0-3"}},
		{100 * ms, header(1, span(0, 2), bits(4, span(0, 2))), []string{"progress 0/4", "watch P"}},
		{200 * ms, leafIn(1, 0), []string{"progress 1/4"}},
		{300 * ms, leafIn(1, 1), []string{"progress 2/4"}},
		{300 * ms, end(1, nil), nil}, // it has nothing more: the fetch waits for it
		{1000 * ms, tick("P"), nil},
		{1200 * ms, tick("P"), []string{"send #2 P leaves 2-3"}},
	}},
	{name: "stall: partial holders that never get the rest end the fetch after Stall", leaves: 2, held: bits(2), stall: 30 * time.Second, steps: []step{
		{0, start("P"), []string{"progress 0/2", "send #1 P leaves 0-1"}},
		{100 * ms, header(1, span(0, 1), bits(2, span(0, 1))), []string{"progress 0/2", "watch P"}},
		{200 * ms, leafIn(1, 0), []string{"progress 1/2"}},
		{200 * ms, end(1, nil), nil},
		{2 * time.Second, tick("P"), []string{"send #2 P leaves 1"}},
		{2100 * ms, header(2, nil, bits(2, span(0, 1))), []string{"progress 1/2"}},
		{2100 * ms, end(2, nil), nil},
		{30 * time.Second, tick("P"), []string{"send #3 P leaves 1"}},
		{30100 * ms, header(3, nil, bits(2, span(0, 1))), []string{"progress 1/2"}},
		{30100 * ms, end(3, nil), nil},
		{30300 * ms, tick("P"), []string{"fail: fetch: incomplete: R: 1 of 2 leaves, none for 30s: providers busy, slow or with nothing more"}},
	}},
	{name: "stall counts from the last new leaf or header offering leaves", leaves: 4, held: bits(4), stall: time.Second, steps: []step{
		{0, start("A"), []string{"progress 0/4", "send #1 A leaves 0-3"}},
		{900 * ms, header(1, span(0, 4), nil), []string{"progress 0/4"}},
		{1800 * ms, tick("A"), nil},
		{1800 * ms, leafIn(1, 0), []string{"progress 1/4"}},
		{2700 * ms, tick("A"), nil},
		{2700 * ms, leafIn(1, 1), []string{"progress 2/4"}},
		{3800 * ms, tick("A"), []string{"fail: fetch: incomplete: R: 2 of 4 leaves, none for 1s: providers busy, slow or with nothing more"}},
	}},
	{name: "busy: asked again after a wait that doubles, never dropped", leaves: 2, held: bits(2), steps: []step{
		{0, start("A"), []string{"progress 0/2", "send #1 A leaves 0-1"}},
		{100 * ms, end(1, errBusy), nil},
		{300 * ms, tick("A"), nil},
		{400 * ms, tick("A"), []string{"send #2 A leaves 0-1"}}, // after 250 ms
		{500 * ms, end(2, errBusy), nil},
		{900 * ms, tick("A"), nil},
		{1100 * ms, tick("A"), []string{"send #3 A leaves 0-1"}}, // after 500 ms
		{1200 * ms, header(3, span(0, 1), nil), []string{"progress 0/2"}},
		{1300 * ms, leafIn(3, 0), []string{"progress 1/2"}},
		{1300 * ms, end(3, nil), []string{"send #4 A leaves 1"}},
		{1400 * ms, end(4, errBusy), nil},
		{1700 * ms, tick("A"), []string{"send #5 A leaves 1"}}, // a success started the wait over
		{1800 * ms, header(5, span(1, 2), nil), []string{"progress 1/2"}},
		{1900 * ms, leafIn(5, 1), []string{"progress 2/2", "done"}},
	}},
	{name: "busy with a hint: asked again when the provider said, its wait not doubled", leaves: 2, held: bits(2), steps: []step{
		{0, start("A"), []string{"progress 0/2", "send #1 A leaves 0-1"}},
		{100 * ms, end(1, &busyError{msg: "uplink busy", retry: 300 * ms}), nil},
		{399 * ms, tick("A"), nil},
		{400 * ms, tick("A"), []string{"send #2 A leaves 0-1"}},
		{500 * ms, end(2, &busyError{msg: "uplink busy", retry: 300 * ms}), nil},
		{800 * ms, tick("A"), []string{"send #3 A leaves 0-1"}},
	}},
	// (The fair share is split between the idle peers, not the requests
	// MaxProviders allows: with one request at a time, A gets half.)
	{name: "choked mid-stream: the rest goes to another provider, the choker is not dropped", leaves: 4, held: bits(4), max: 1, steps: []step{
		{0, start("A", "B"), []string{"progress 0/4", "send #1 A leaves 0-1"}},
		{100 * ms, header(1, span(0, 2), nil), []string{"progress 0/4", "watch B"}},
		{200 * ms, leafIn(1, 0), []string{"progress 1/4"}},
		{300 * ms, end(1, errBusy), []string{"send #2 B leaves 1-3"}},
	}},
	{name: "a liar (says it has the asked leaves, offers none) is dropped and not asked again", leaves: 4, held: bits(4), max: 1, steps: []step{
		{0, start("L", "F"), []string{"progress 0/4", "send #1 F leaves 0-1"}},
		{100 * ms, end(1, errGone), []string{"drop F", "send #2 L leaves 0-3"}},
		{200 * ms, end(2, errLiar), []string{"drop L", "fail: fetch: incomplete: R: 0 of 4 leaves: " + errLiar.Error()}},
	}},
	{name: "a corrupt block: its provider is dropped as bad, another brings its leaves", leaves: 4, held: bits(4), steps: []step{
		{0, start("A", "B"), []string{"progress 0/4", "send #1 A leaves 0-1", "send #2 B leaves 2-3"}},
		{100 * ms, header(2, span(2, 4), nil), []string{"progress 0/4"}},
		{150 * ms, header(1, span(0, 2), nil), []string{"progress 0/4"}},
		{200 * ms, end(2, errBlock), []string{"drop B bad"}},
		{250 * ms, tick("A", "B"), nil}, // not asked again
		{300 * ms, leafIn(1, 0), []string{"progress 1/4"}},
		{400 * ms, leafIn(1, 1), []string{"progress 2/4"}},
		{400 * ms, end(1, nil), []string{"send #3 A leaves 2-3"}},
	}},
	// 5 MiB at 1 MiB/s: 35 s.
	{name: "deadline: 30 s and the size at MinRate after the layout", leaves: 5, held: bits(5), stall: time.Hour, minRate: 1 << 20, steps: []step{
		{0, start("A"), []string{"progress 0/5", "send #1 A leaves 0-4"}},
		{100 * ms, header(1, span(0, 5), nil), []string{"progress 0/5"}},
		{7 * time.Second, leafIn(1, 0), []string{"progress 1/5"}},
		{14 * time.Second, leafIn(1, 1), []string{"progress 2/5"}},
		{21 * time.Second, leafIn(1, 2), []string{"progress 3/5"}},
		{28 * time.Second, leafIn(1, 3), []string{"progress 4/5"}},
		{35 * time.Second, tick("A"), nil},
		{35100 * ms, tick("A"), []string{"fail: fetch: incomplete: R: timed out with 4 of 5 leaves"}},
	}},
	{name: "silence: a provider that sends no header in headerPatience is dropped, its leaves asked of another", leaves: 4, held: bits(4), steps: []step{
		{0, start("A", "B"), []string{"progress 0/4", "send #1 A leaves 0-1", "send #2 B leaves 2-3"}},
		{0, opened(1), nil},
		{100 * ms, header(2, span(2, 3), nil), []string{"progress 0/4"}},
		{1900 * ms, tick("A", "B"), nil},
		{2100 * ms, tick("A", "B"), []string{"cancel #1"}},
		{2100 * ms, end(1, context.Canceled), []string{"drop A"}},
		{2200 * ms, leafIn(2, 2), []string{"progress 1/4"}},
		{2200 * ms, end(2, nil), []string{"send #3 B leaves 0-1,3"}},
	}},
	{name: "silence counts from the stream opening: a dial or a wait for a direct connection is not silence", leaves: 4, held: bits(4), steps: []step{
		{0, start("A", "B"), []string{"progress 0/4", "send #1 A leaves 0-1", "send #2 B leaves 2-3"}},
		{0, opened(2), nil},
		{100 * ms, header(2, span(2, 3), nil), []string{"progress 0/4"}},
		{2100 * ms, tick("A", "B"), nil},
		{3000 * ms, opened(1), nil},
		{4900 * ms, tick("A", "B"), nil},
		{5100 * ms, tick("A", "B"), []string{"cancel #1"}},
		{5100 * ms, end(1, context.Canceled), []string{"drop A"}},
	}},
	{name: "silence: a request that brings no leaf in leafPatience is cut, its provider dropped", leaves: 4, held: bits(4), steps: []step{
		{0, start("A", "B"), []string{"progress 0/4", "send #1 A leaves 0-1", "send #2 B leaves 2-3"}},
		{100 * ms, header(1, span(0, 2), nil), []string{"progress 0/4"}},
		// B holds 2-3 only: it cannot take leaf 1 from A (steal).
		{100 * ms, header(2, span(2, 4), bits(4, span(2, 4))), []string{"progress 0/4", "watch B"}},
		{500 * ms, leafIn(1, 0), []string{"progress 1/4"}},
		{600 * ms, leafIn(2, 2), []string{"progress 2/4"}},
		{700 * ms, leafIn(2, 3), []string{"progress 3/4"}},
		{700 * ms, end(2, nil), nil},
		{8400 * ms, tick("A", "B"), nil},
		{8600 * ms, tick("A", "B"), []string{"cancel #1", "send #3 B leaves 1"}},
		{8600 * ms, end(1, context.Canceled), []string{"drop A"}},
	}},
	{name: "silence: pieces that verify keep a slow request alive past leafPatience; then piecePatience applies", leaves: 2, held: bits(2), steps: []step{
		{0, start("A"), []string{"progress 0/2", "send #1 A leaves 0-1"}},
		{100 * ms, header(1, span(0, 2), nil), []string{"progress 0/2"}},
		{1000 * ms, evPiece{req: 1}, nil},
		{2500 * ms, evPiece{req: 1}, nil},
		{4000 * ms, evPiece{req: 1}, nil},
		{5500 * ms, evPiece{req: 1}, nil},
		{7000 * ms, evPiece{req: 1}, nil},
		{8500 * ms, evPiece{req: 1}, nil},
		{8600 * ms, tick("A"), nil},
		{10400 * ms, tick("A"), nil},
		{10600 * ms, tick("A"), []string{"cancel #1"}},
	}},
	{name: "silence: a provider whose pieces stop is dropped at once", leaves: 2, held: bits(2), steps: []step{
		{0, start("F"), []string{"progress 0/2", "send #1 F leaves 0-1"}},
		{100 * ms, header(1, span(0, 2), nil), []string{"progress 0/2"}},
		{500 * ms, evPiece{req: 1}, nil},
		{2600 * ms, tick("F"), []string{"cancel #1"}},
		{2600 * ms, end(1, context.Canceled), []string{"drop F", "fail: fetch: incomplete: R: 0 of 2 leaves: fetch: provider silent: no piece in 2.1s"}},
	}},
	{name: "end game: a full provider takes the last leaf of a request whose pieces stopped; that request is cut, its provider kept", leaves: 2, held: bits(2), steps: []step{
		{0, start("A", "F"), []string{"progress 0/2", "send #1 A leaves 0", "send #2 F leaves 1"}},
		{100 * ms, header(1, span(0, 1), bits(2, span(0, 1))), []string{"progress 0/2", "watch A"}},
		{100 * ms, header(2, span(1, 2), nil), []string{"progress 0/2"}},
		{200 * ms, evPiece{req: 1}, nil},
		{500 * ms, evPiece{req: 1}, nil},
		// F brought its leaf at 2 MiB/s: it would bring leaf 0 in 0.6 s,
		// A (128 KiB in 0.5 s) in 7 s; but A's pieces still come.
		{600 * ms, leafIn(2, 1), []string{"progress 1/2"}},
		{600 * ms, end(2, nil), nil},
		{1250 * ms, tick("A", "F"), nil},
		// Nothing from A for endgameStall: F takes leaf 0.
		{1750 * ms, tick("A", "F"), []string{"cancel #1", "send #3 F leaves 0"}},
		{1800 * ms, end(1, context.Canceled), nil},
		{1900 * ms, header(3, span(0, 1), nil), []string{"progress 1/2"}},
		{2400 * ms, leafIn(3, 0), []string{"progress 2/2", "done"}},
	}},
	{name: "end game: a request whose pieces come at a fair pace keeps its last leaf", leaves: 2, held: bits(2), steps: []step{
		{0, start("A", "F"), []string{"progress 0/2", "send #1 A leaves 0", "send #2 F leaves 1"}},
		{100 * ms, header(1, span(0, 1), bits(2, span(0, 1))), []string{"progress 0/2", "watch A"}},
		{100 * ms, header(2, span(1, 2), nil), []string{"progress 0/2"}},
		{200 * ms, evPiece{req: 1}, nil},
		{300 * ms, evPiece{req: 1}, nil},
		{400 * ms, evPiece{req: 1}, nil},
		{500 * ms, evPiece{req: 1}, nil},
		{600 * ms, evPiece{req: 1}, nil},
		{600 * ms, leafIn(2, 1), []string{"progress 1/2"}},
		{600 * ms, end(2, nil), nil},
	}},
	{name: "the fetch ends with the last provider's error when no one is left", leaves: 2, steps: []step{
		{0, start("A"), []string{"send #1 A share 0/1"}},
		{100 * ms, end(1, errGone), []string{"drop A", "fail: fetch: incomplete: R: 0 of 0 leaves: connection reset"}},
	}},
}

func TestSchedulerPolicy(t *testing.T) {
	for _, tc := range stateCases {
		t.Run(tc.name, func(t *testing.T) {
			s, layout := newTestState(tc)
			t0 := time.Unix(1e9, 0)
			for i, st := range tc.steps {
				got := applyLikeLoop(s, layout, tc.held, st.ev, t0.Add(st.at))
				if g := show(got); !slices.Equal(g, st.want) {
					t.Fatalf("step %d (%T at %v): got\n\t%q\nwant\n\t%q", i, st.ev, st.at, g, st.want)
				}
				if err := checkState(s); err != nil {
					t.Fatalf("step %d (%T at %v): %v", i, st.ev, st.at, err)
				}
			}
		})
	}
}

// Idle peers are asked partial holders first, and in each group the slow
// ones (under 1/slowShare of the best rate measured) last; a peer not
// measured yet is not slow.
func TestIdlePeersSlowLast(t *testing.T) {
	s, _ := newTestState(stateCase{leaves: 2})
	for _, p := range []struct {
		name    string
		partial bool
		rate    float64
	}{{"A", false, 1e5}, {"B", false, 1e7}, {"C", false, 0}, {"P", true, 1e5}, {"Q", true, 5e6}} {
		ps := &peerState{id: peer.ID(p.name), rate: p.rate}
		if p.partial {
			ps.has = make([]bool, 2)
		}
		s.peers[ps.id] = ps
	}
	var got []string
	for _, p := range s.idlePeers(time.Unix(1e9, 0)) {
		got = append(got, string(p.id))
	}
	if want := []string{"Q", "P", "B", "C", "A"}; !slices.Equal(got, want) {
		t.Fatalf("idle peers in the order %v, want %v", got, want)
	}
}
