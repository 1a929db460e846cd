package node

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/node/api"
)

// A transfer is one fetch the node runs: for its user (StartFetch, a
// resolve) or for a want rule (a prefetch). The transfers table holds the
// running ones and remembers finished ones for a while, for the API and
// the status page; whoever waits for one waits on its done channel.

// errCanceled ends a transfer that DELETE /v1/fetch/{cid} canceled.
var errCanceled = errors.New("canceled")

// transferKeep is how long finished transfers stay listed.
const transferKeep = time.Hour

// maxFinished bounds the finished transfers listed: prefetches of experts
// nobody serves fail in seconds, and a flood of them must not grow the
// list without end.
const maxFinished = 256

// transfer is one fetch. cid, started, done and cancel are set when it is
// made; the rest is guarded by mu.
type transfer struct {
	cid     cid.Cid
	started time.Time
	done    chan struct{} // closed when the fetch ended, its outcome set
	cancel  context.CancelCauseFunc

	mu        sync.Mutex
	requested bool   // the user asked for the expert by its CID
	phase     string // what it does now, for people (api.Transfer.Phase)
	canceled  bool   // stop was called while it ran
	bytes     uint64
	total     uint64
	state     string
	err       error
	finished  time.Time
}

// transfers is the table of transfers by CID.
type transfers struct {
	mu sync.Mutex
	m  map[string]*transfer
}

func newTransfers() *transfers { return &transfers{m: map[string]*transfer{}} }

// add records a new running transfer of c, its context derived from ctx,
// and returns it (started true); or returns the one running already. Either
// way requested marks it as asked for by the user. Finished transfers past
// transferKeep, and the oldest beyond maxFinished, are forgotten here and
// nowhere else.
func (ts *transfers) add(ctx context.Context, c cid.Cid, requested bool, now time.Time) (t *transfer, tctx context.Context, started bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t := ts.m[c.String()]; t != nil && t.running() {
		if requested {
			t.mu.Lock()
			t.requested = true
			t.mu.Unlock()
		}
		return t, nil, false
	}
	ts.prune(now)
	tctx, cancel := context.WithCancelCause(ctx)
	t = &transfer{cid: c, started: now, done: make(chan struct{}), cancel: cancel, requested: requested, state: api.StateRunning}
	ts.m[c.String()] = t
	return t, tctx, true
}

// prune forgets finished transfers past transferKeep and the oldest beyond
// maxFinished - 1, making room for one more. Called with ts.mu held.
func (ts *transfers) prune(now time.Time) {
	var finished []*transfer
	for k, t := range ts.m {
		switch end, ok := t.ended(); {
		case !ok:
		case now.Sub(end) > transferKeep:
			delete(ts.m, k)
		default:
			finished = append(finished, t)
		}
	}
	if len(finished) < maxFinished {
		return
	}
	slices.SortFunc(finished, func(a, b *transfer) int {
		ea, _ := a.ended()
		eb, _ := b.ended()
		return ea.Compare(eb)
	})
	for _, t := range finished[:len(finished)-maxFinished+1] {
		delete(ts.m, t.cid.String())
	}
}

// get returns the transfer of c, if one is running or ended within
// transferKeep.
func (ts *transfers) get(c cid.Cid, now time.Time) (*transfer, bool) {
	ts.mu.Lock()
	t := ts.m[c.String()]
	ts.mu.Unlock()
	if t == nil || !t.listed(now) {
		return nil, false
	}
	return t, true
}

// list returns the running transfers and those ended within transferKeep,
// newest first.
func (ts *transfers) list(now time.Time) []api.Transfer {
	ts.mu.Lock()
	all := make([]*transfer, 0, len(ts.m))
	for _, t := range ts.m {
		all = append(all, t)
	}
	ts.mu.Unlock()
	var out []api.Transfer
	for _, t := range all {
		if t.listed(now) {
			out = append(out, t.snapshot())
		}
	}
	slices.SortFunc(out, func(a, b api.Transfer) int { return b.Started.Compare(a.Started) })
	return out
}

// running reports whether t has not ended.
func (t *transfer) running() bool {
	_, ended := t.ended()
	return !ended
}

// ended returns when t ended, if it did.
func (t *transfer) ended() (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.finished, t.state != api.StateRunning
}

// listed reports whether t is running or ended within transferKeep.
func (t *transfer) listed(now time.Time) bool {
	end, ok := t.ended()
	return !ok || now.Sub(end) <= transferKeep
}

// setPhase says what t does now.
func (t *transfer) setPhase(phase string) {
	t.mu.Lock()
	if !t.canceled { // "canceling" stays
		t.phase = phase
	}
	t.mu.Unlock()
}

// setProgress records how much of the expert t holds.
func (t *transfer) setProgress(bytes, total uint64) {
	t.mu.Lock()
	t.bytes, t.total = bytes, total
	t.mu.Unlock()
}

// isRequested reports whether the user asked for t's expert by its CID.
func (t *transfer) isRequested() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.requested
}

// stop cancels t if it runs, and reports whether it did.
func (t *transfer) stop() bool {
	t.mu.Lock()
	running := t.state == api.StateRunning
	if running {
		t.canceled, t.phase = true, "canceling"
	}
	t.mu.Unlock()
	if running {
		t.cancel(errCanceled)
	}
	return running
}

// finish records t's outcome and closes done: done if err is nil, else
// canceled if stop was called, else failed. It returns t's final state.
func (t *transfer) finish(err error, now time.Time) api.Transfer {
	t.mu.Lock()
	t.finished, t.phase = now, ""
	switch {
	case err == nil:
		t.state = api.StateDone
	case t.canceled:
		t.state, t.err = api.StateCanceled, errCanceled
	default:
		t.state, t.err = api.StateFailed, err
	}
	t.mu.Unlock()
	t.cancel(nil) // releases the context
	close(t.done)
	return t.snapshot()
}

// outcome is the error t ended with (nil if done); call it once done is
// closed.
func (t *transfer) outcome() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// snapshot is t as the API shows it.
func (t *transfer) snapshot() api.Transfer {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := api.Transfer{
		CID: t.cid.String(), State: t.state, Phase: t.phase, Bytes: t.bytes, Total: t.total,
		Started: t.started, Finished: t.finished,
	}
	if t.err != nil {
		out.Error = t.err.Error()
	}
	return out
}
