package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/internal/slogutil"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/fetch"
	"github.com/expertd/expertd/node/gossip"
	"github.com/expertd/expertd/node/store"
)

// StartFetch implements api.Backend: it starts fetching an expert in the
// background, or joins the fetch already running. The user asked for the
// expert by its CID, which vouches for it: once held, it is handed to the
// inference server whoever published it (store.Meta.Requested). A fetch
// the user asks for is patient (see fetch).
func (n *Node) StartFetch(s string) (api.Transfer, error) {
	c, err := parseCID(s)
	if err != nil {
		return api.Transfer{}, err
	}
	t, err := n.startFetch(c, true)
	if err != nil {
		return api.Transfer{}, err
	}
	if t == nil {
		now := time.Now()
		held, _ := n.heldTransfer(c)
		held.Started, held.Finished = now, now
		return held, nil
	}
	return t.snapshot(), nil
}

// startFetch starts fetching c in the background, or joins the fetch
// already running, and returns it; requested says that the user asked for
// c by its CID. It returns no transfer if c is held already.
func (n *Node) startFetch(c cid.Cid, requested bool) (*transfer, error) {
	if m, err := n.store.Get(c); err == nil {
		if requested && !m.Requested {
			if err := n.store.Update(c, func(m *store.Meta) { m.Requested = true }); err != nil {
				return nil, storeErr(err)
			}
			m.Requested = true
			n.handOff(m)
		}
		return nil, nil
	}
	t, tctx, started := n.transfers.add(n.life.ctx, c, requested, time.Now())
	if started && !n.life.Go(func(context.Context) { _ = n.runFetch(tctx, t, true) }) {
		t.finish(errStopped, time.Now())
	}
	return t, nil
}

// runFetch runs the transfer t once a fetch slot is free (a provider
// serves 4 streams per peer: a few fetches at a time) and records its
// outcome, which it returns.
func (n *Node) runFetch(ctx context.Context, t *transfer, patient bool) error {
	var err error
	t.setPhase("waiting for a fetch slot")
	select {
	case n.slots <- struct{}{}:
		err = n.fetch(ctx, t, patient)
		<-n.slots
	case <-ctx.Done():
		err = ctx.Err()
	}
	end := t.finish(err, time.Now())
	took := end.Finished.Sub(end.Started)
	switch end.State {
	case api.StateCanceled:
		n.metrics.FetchCanceled()
		n.log.Info("fetch canceled", slogutil.CID(t.cid), slogutil.Bytes(end.Bytes), "took", took.Round(time.Millisecond))
		return errCanceled
	case api.StateFailed:
		n.metrics.FetchDone(took, err)
		n.log.Warn("fetch failed", slogutil.CID(t.cid), slogutil.Err(err))
		return err
	}
	n.metrics.FetchDone(took, nil)
	n.log.Info("fetched", slogutil.CID(t.cid), slogutil.Bytes(end.Total), "took", took.Round(time.Millisecond))
	return nil
}

// Transfer implements api.Backend.
func (n *Node) Transfer(s string) (api.Transfer, error) {
	c, err := parseCID(s)
	if err != nil {
		return api.Transfer{}, err
	}
	t, ok := n.transfers.get(c, time.Now())
	if ok && t.running() {
		return t.snapshot(), nil
	}
	if held, ok := n.heldTransfer(c); ok { // held now, whatever an old transfer said
		return held, nil
	}
	if ok {
		return t.snapshot(), nil
	}
	return api.Transfer{}, fmt.Errorf("no fetch of %s: %w", c, api.ErrNotFound)
}

// cancelWait bounds how long CancelFetch waits for the fetch to stop.
const cancelWait = 10 * time.Second

// CancelFetch implements api.Backend: it cancels the running fetch of an
// expert (whoever started it) and waits for it to stop, up to cancelWait.
// The leaves it verified stay in the store: fetching the expert again
// resumes from them.
func (n *Node) CancelFetch(ctx context.Context, s string) (api.Transfer, error) {
	c, err := parseCID(s)
	if err != nil {
		return api.Transfer{}, err
	}
	t, ok := n.transfers.get(c, time.Now())
	if !ok {
		if held, ok := n.heldTransfer(c); ok {
			return held, nil
		}
		return api.Transfer{}, fmt.Errorf("no fetch of %s: %w", c, api.ErrNotFound)
	}
	if t.stop() {
		n.log.Info("canceling fetch", slogutil.CID(c))
	}
	timer := time.NewTimer(cancelWait)
	defer timer.Stop()
	select {
	case <-t.done:
	case <-ctx.Done():
	case <-timer.C:
	}
	return t.snapshot(), nil
}

// heldTransfer is a finished transfer of c if the store holds it.
func (n *Node) heldTransfer(c cid.Cid) (api.Transfer, bool) {
	m, err := n.store.Get(c)
	if err != nil {
		return api.Transfer{}, false
	}
	return api.Transfer{CID: c.String(), State: api.StateDone, Bytes: uint64(m.Size), Total: uint64(m.Size)}, true
}

// fetchAttempts bounds the retries of a fetch whose providers were busy,
// gone or not yet known; waits double from one second.
const fetchAttempts = 5

// prefetchAnswer is how long a prefetch waits for some provider to answer
// (with the expert's layout) before it gives up.
const prefetchAnswer = 10 * time.Second

// errNoAnswer ends a fetch whose providers did not answer in time.
var errNoAnswer = errors.New("no provider answered")

// fetch runs fetchOnce. A patient fetch (one a user asked for) retries
// with backoff: a provider that answered BUSY (too many concurrent
// fetches) or vanished may serve a moment later, and provider records may
// still be spreading; verified blocks are kept between attempts, so a
// retry only fetches what is missing. A prefetch is not patient: anyone
// can announce experts a want rule matches, and a prefetch of one nobody
// serves must cost seconds, not minutes of retries and DHT searches.
//
// Finding a provider is bounded: until some provider answers (sends the
// expert's layout), a patient fetch fails after fetch.find_timeout (0: its
// attempts alone bound it), a prefetch after prefetchAnswer.
func (n *Node) fetch(ctx context.Context, t *transfer, patient bool) error {
	limit, attempts := prefetchAnswer, 1
	if patient {
		limit, attempts = n.cfg.Fetch.FindTimeout, fetchAttempts
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s := &search{t: t, attempts: attempts, answered: func() {}}
	if limit > 0 {
		timer := time.AfterFunc(limit, func() { cancel(errNoAnswer) })
		defer timer.Stop()
		s.answered = func() { timer.Stop() }
	}
	err := n.attempts(ctx, s, patient)
	if err != nil && errors.Is(context.Cause(ctx), errNoAnswer) {
		return fmt.Errorf("%w within %v: %s", errNoAnswer, limit, s)
	}
	return err
}

// attempts runs fetchOnce up to s.attempts times.
func (n *Node) attempts(ctx context.Context, s *search, patient bool) error {
	wait := time.Second
	for s.attempt = 1; ; s.attempt++ {
		err := n.fetchOnce(ctx, s, patient)
		if err == nil || s.attempt == s.attempts || ctx.Err() != nil ||
			errors.Is(err, store.ErrQuota) || errors.Is(err, store.ErrTooLarge) || errors.Is(err, fetch.ErrTooLarge) ||
			errors.Is(err, fetch.ErrRelayLimit) || errors.Is(err, ErrNotExpert) {
			return err
		}
		n.log.Info("fetch attempt failed; retrying", slogutil.CID(s.t.cid), "attempt", s.attempt, "in", wait, slogutil.Err(err))
		s.t.setPhase(fmt.Sprintf("retrying in %v (attempt %d of %d failed)", wait, s.attempt, s.attempts))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// search is what a fetch asked, for its phase and for its error if no
// provider answers.
type search struct {
	t                 *transfer
	attempt, attempts int
	answered          func() // a provider sent the layout: the find phase ended
	gossip            int    // providers gossip knew, at most
	dht               bool   // the DHT was asked
	found             int    // providers the DHT found, at most
}

// looking says where the fetch looks for providers now.
func (s *search) looking(where string) {
	phase := "looking for providers: " + where
	if s.attempts > 1 {
		phase += fmt.Sprintf(" (attempt %d of %d)", s.attempt, s.attempts)
	}
	s.t.setPhase(phase)
}

// String says what was asked: "none known from gossip, none found in the
// DHT (5 attempts)".
func (s *search) String() string {
	out := count(s.gossip, "known from gossip")
	if s.dht {
		out += ", " + count(s.found, "found in the DHT")
	}
	if s.attempt > 1 {
		out += fmt.Sprintf(" (%d attempts)", s.attempt)
	}
	return out
}

// count is "none known from gossip", "2 known from gossip".
func count(n int, what string) string {
	if n == 0 {
		return "none " + what
	}
	return fmt.Sprintf("%d %s", n, what)
}

// fetching is the phase of a fetch given n providers.
func fetching(n int) string {
	if n == 1 {
		return api.PhaseFetching + " from 1 provider"
	}
	return fmt.Sprintf("%s from %d providers", api.PhaseFetching, n)
}

// fetchOnce finds providers (gossip first, then, if patient, the DHT),
// fetches, indexes the expert and becomes a provider of it. If not
// patient, it asks the providers gossip knows only.
func (n *Node) fetchOnce(ctx context.Context, s *search, patient bool) error {
	t := s.t
	c := t.cid
	meta := store.Meta{}
	var opts []fetch.FetchOption
	if en, ok := n.gossip.View().Get(c); ok {
		meta = metaFromEntry(en)
		if err := n.store.CheckFit(en.Size); err != nil {
			return err
		}
		opts = append(opts, fetch.WithOutboard(outboardOf(en)))
	}
	announced := false
	progress := func(p fetch.Progress) {
		if p.Total > 0 {
			s.answered()
		}
		t.setProgress(p.Bytes, p.Total)
		// This node serves the leaves it holds to the others fetching the
		// expert, so the publisher's upload stays bounded. It announces
		// itself as soon as it knows the layout, before its first leaf:
		// the others then watch it, and learn each leaf it comes to hold
		// as it is verified (fetch's watch), not a gossip round later.
		// An expert of one leaf has no layout to serve before that leaf:
		// announced, it would answer "not found" to everyone asking.
		if p.OfLeaf > 1 && p.Total > 0 && p.Leaves < p.OfLeaf && !announced && meta.CID != "" {
			announced = true
			n.announce(meta, false)
		}
	}
	s.looking("gossip")
	providers := n.gossip.View().Providers(c)
	s.gossip = max(s.gossip, len(providers))
	var err error
	if len(providers) > 0 {
		t.setPhase(fetching(len(providers)))
		more := func() []peer.ID { return n.gossip.View().Providers(c) }
		if _, err = n.fetcher.FetchFrom(ctx, c, more, progress, opts...); err == nil {
			return n.complete(ctx, t, meta)
		}
		if !patient {
			return err
		}
		n.log.Info("fetch from gossip providers failed; asking the DHT", slogutil.CID(c), slogutil.Err(err))
	}
	if len(providers) == 0 {
		if !patient {
			return errors.New("no provider known from gossip")
		}
		n.log.Info("no provider known from gossip; asking the DHT", slogutil.CID(c))
	}
	s.looking("gossip, DHT")
	s.dht = true
	// Provider records may still be spreading: ask again for a while.
	var found []peer.ID
	var derr error
	for wait := 250 * time.Millisecond; ; wait *= 2 {
		if found, derr = n.findProviders(ctx, c); len(found) > 0 || wait > 8*time.Second {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	s.found = max(s.found, len(found))
	if len(found) == 0 {
		if err != nil {
			return err
		}
		if derr != nil {
			return fmt.Errorf("no provider known: %w", derr)
		}
		return errors.New("no provider known from gossip or found in the DHT")
	}
	t.setPhase(fetching(len(found)))
	if _, err = n.fetcher.FetchFrom(ctx, c, func() []peer.ID { return found }, progress, opts...); err != nil {
		return err
	}
	return n.complete(ctx, t, meta)
}

// complete indexes the expert t fetched and becomes a provider of it.
func (n *Node) complete(ctx context.Context, t *transfer, meta store.Meta) error {
	c := t.cid
	t.setPhase("storing")
	meta.Pinned = false
	meta.Requested = t.isRequested()
	if err := n.store.Complete(ctx, c, meta); err != nil {
		return err
	}
	if err := n.checkFetched(ctx, c); err != nil {
		// Verified against its CID, but nothing this node would write: it
		// is neither kept nor served on (a decompression bomb spreads no
		// further than the nodes that asked for it by CID).
		if rerr := n.store.Remove(c); rerr != nil {
			n.log.Warn("removing a refused expert", slogutil.CID(c), slogutil.Err(rerr))
		}
		return err
	}
	m, err := n.store.Get(c)
	if err != nil {
		return err
	}
	n.announce(m, true)
	n.handOff(m)
	return nil
}

// findProviders asks the DHT and connects to what it finds.
func (n *Node) findProviders(ctx context.Context, c cid.Cid) ([]peer.ID, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	infos, err := n.p2p.FindProviders(ctx, c, n.cfg.Fetch.MaxProviders)
	var out []peer.ID
	for _, ai := range infos {
		if ai.ID == n.p2p.ID() {
			continue
		}
		if len(ai.Addrs) > 0 {
			n.p2p.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		}
		out = append(out, ai.ID)
	}
	return out, err
}

// ErrNotExpert means fetched bytes are not an expert this node accepts: not
// a container whose header validates, or one whose declared output is over
// store.max_output_size.
var ErrNotExpert = errors.New("not an expert this node accepts")

// checkFetched reads the header of the container stored under c, as a
// decompression would before writing anything: its fields, and its declared
// output against store.max_output_size.
func (n *Node) checkFetched(ctx context.Context, c cid.Cid) error {
	rc, err := n.store.Open(ctx, c)
	if err != nil {
		return err
	}
	defer rc.Close()
	r, err := compress.NewReader(rc)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotExpert, err)
	}
	out, err := compress.OutputBytes(r.Header(), n.cfg.Inference.DType)
	if err == nil {
		err = compress.CheckOutput(out, n.cfg.Store.OutputLimit())
	}
	if err != nil {
		return fmt.Errorf("%w: %w (store.max_output_size)", ErrNotExpert, err)
	}
	return nil
}

// outboardOf returns the outboard hash in the publication of en, the
// expert's publisher's signature over it; nil for an unsigned entry.
func outboardOf(en gossip.Entry) []byte {
	if !en.Signed {
		return nil
	}
	p, err := gossip.OpenPublication(en.Envelope)
	if err != nil || !p.CID.Equals(en.CID) {
		return nil
	}
	return p.Outboard
}
