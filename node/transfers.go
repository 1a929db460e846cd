package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/fetch"
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
	return n.startFetch(c, true)
}

// startFetch starts fetching c in the background, or joins the fetch
// already running; requested says that the user asked for c by its CID.
func (n *Node) startFetch(c cid.Cid, requested bool) (api.Transfer, error) {
	key := c.String()
	if m, err := n.store.Get(c); err == nil {
		if requested && !m.Requested {
			if err := n.store.Update(c, func(m *store.Meta) { m.Requested = true }); err != nil {
				return api.Transfer{}, storeErr(err)
			}
			m.Requested = true
			n.handOff(m)
		}
		now := time.Now()
		return api.Transfer{CID: c.String(), State: api.StateDone, Bytes: uint64(m.Size), Total: uint64(m.Size), Started: now, Finished: now}, nil
	}
	if requested {
		n.mu.Lock()
		n.requested[key] = true // read by complete
		n.mu.Unlock()
	}
	t, snap, started := n.newTransfer(c)
	if !started {
		return snap, nil
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		select { // a few fetches at a time: a provider serves 4 streams per peer
		case n.slots <- struct{}{}:
			defer func() { <-n.slots }()
		case <-n.quit:
		}
		n.finishTransfer(c, t, n.fetch(c, t, true))
	}()
	return snap, nil
}

// maxFinished bounds the finished transfers listed: prefetches of experts
// nobody serves fail in seconds, and a flood of them must not grow the
// list without end.
const maxFinished = 256

// newTransfer records a running transfer of c and returns it with a copy,
// or returns the one running already (started false).
func (n *Node) newTransfer(c cid.Cid) (t *api.Transfer, snap api.Transfer, started bool) {
	key := c.String()
	n.mu.Lock()
	defer n.mu.Unlock()
	if t, ok := n.transfers[key]; ok && t.State == api.StateRunning {
		return t, *t, false
	}
	var finished []*api.Transfer
	for k, old := range n.transfers { // forget finished transfers after a while
		switch {
		case old.State == api.StateRunning:
		case time.Since(old.Finished) > transferKeep:
			delete(n.transfers, k)
		default:
			finished = append(finished, old)
		}
	}
	if len(finished) >= maxFinished {
		slices.SortFunc(finished, func(a, b *api.Transfer) int { return a.Finished.Compare(b.Finished) })
		for _, old := range finished[:len(finished)-maxFinished+1] {
			delete(n.transfers, old.CID)
		}
	}
	t = &api.Transfer{CID: key, State: api.StateRunning, Started: time.Now()}
	n.transfers[key] = t
	return t, *t, true
}

// finishTransfer records the outcome of t, the transfer of c.
func (n *Node) finishTransfer(c cid.Cid, t *api.Transfer, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.requested, c.String())
	t.Finished = time.Now()
	n.metrics.FetchDone(t.Finished.Sub(t.Started), err)
	if err != nil {
		t.State, t.Error = api.StateFailed, err.Error()
		n.log.Warn("fetch failed", "cid", c, "err", err)
		return
	}
	t.State = api.StateDone
	n.log.Info("fetched", "cid", c, "bytes", t.Total, "took", t.Finished.Sub(t.Started).Round(time.Millisecond))
}

// Transfer implements api.Backend.
func (n *Node) Transfer(s string) (api.Transfer, error) {
	c, err := parseCID(s)
	if err != nil {
		return api.Transfer{}, err
	}
	n.mu.Lock()
	t, ok := n.transfers[c.String()]
	var out api.Transfer
	if ok {
		out = *t
	}
	n.mu.Unlock()
	if ok && out.State == api.StateRunning {
		return out, nil
	}
	if m, err := n.store.Get(c); err == nil { // held now, whatever an old transfer said
		return api.Transfer{CID: c.String(), State: api.StateDone, Bytes: uint64(m.Size), Total: uint64(m.Size)}, nil
	}
	if ok {
		return out, nil
	}
	return api.Transfer{}, fmt.Errorf("no fetch of %s: %w", c, api.ErrNotFound)
}

// fetchAttempts bounds the retries of a fetch whose providers were busy,
// gone or not yet known; waits double from one second.
const fetchAttempts = 5

// prefetchAnswer is how long a prefetch waits for some provider to answer
// (with the expert's layout) before it gives up.
const prefetchAnswer = 10 * time.Second

// errNoAnswer ends a prefetch whose providers did not answer in time.
var errNoAnswer = errors.New("no provider answered")

// fetch runs fetchOnce. A patient fetch (one a user asked for) retries
// with backoff: a provider that answered BUSY (too many concurrent
// fetches) or vanished may serve a moment later, and provider records may
// still be spreading; verified blocks are kept between attempts, so a
// retry only fetches what is missing. A prefetch is not patient: anyone
// can announce experts a want rule matches, and a prefetch of one nobody
// serves must cost seconds, not minutes of retries and DHT searches.
func (n *Node) fetch(c cid.Cid, t *api.Transfer, patient bool) error {
	ctx, cancel := n.stopContext()
	defer cancel()
	if !patient {
		return n.fetchOnce(ctx, c, t, false)
	}
	wait := time.Second
	for attempt := 1; ; attempt++ {
		err := n.fetchOnce(ctx, c, t, true)
		if err == nil || attempt == fetchAttempts || ctx.Err() != nil ||
			errors.Is(err, store.ErrQuota) || errors.Is(err, store.ErrTooLarge) || errors.Is(err, fetch.ErrTooLarge) || errors.Is(err, fetch.ErrRelayLimit) {
			return err
		}
		n.log.Info("fetch attempt failed; retrying", "cid", c, "attempt", attempt, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// fetchOnce finds providers (gossip first, then, if patient, the DHT),
// fetches, indexes the expert and becomes a provider of it. If not
// patient, it asks the providers gossip knows only and gives up when none
// answers within prefetchAnswer.
func (n *Node) fetchOnce(ctx context.Context, c cid.Cid, t *api.Transfer, patient bool) error {
	meta := store.Meta{}
	if en, ok := n.gossip.View().Get(c); ok {
		meta = metaFromEntry(en)
		if err := n.store.CheckFit(en.Size); err != nil {
			return err
		}
	}
	answered := func() {}
	if !patient {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		timer := time.AfterFunc(prefetchAnswer, func() { cancel(errNoAnswer) })
		defer timer.Stop()
		answered = func() { timer.Stop() }
	}
	announced := false
	progress := func(p fetch.Progress) {
		if p.Total > 0 {
			answered()
		}
		n.mu.Lock()
		t.Bytes, t.Total = p.Bytes, p.Total
		n.mu.Unlock()
		// Holding verified leaves, this node serves them to the others
		// fetching the expert: the publisher's upload stays bounded.
		if p.Leaves > 0 && p.Leaves < p.OfLeaf && !announced && meta.CID != "" {
			announced = true
			n.announce(meta, false)
		}
	}
	providers := n.gossip.View().Providers(c)
	var err error
	if len(providers) > 0 {
		more := func() []peer.ID { return n.gossip.View().Providers(c) }
		if _, err = n.fetcher.FetchFrom(ctx, c, more, progress); err == nil {
			return n.complete(ctx, c, meta)
		}
		if !patient {
			if errors.Is(context.Cause(ctx), errNoAnswer) {
				return fmt.Errorf("%w within %v (%d known from gossip)", errNoAnswer, prefetchAnswer, len(providers))
			}
			return err
		}
		n.log.Info("fetch from gossip providers failed; asking the DHT", "cid", c, "err", err)
	}
	if len(providers) == 0 {
		if !patient {
			return fmt.Errorf("no provider of %s known from gossip", c)
		}
		n.log.Info("no provider known from gossip; asking the DHT", "cid", c)
	}
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
	if len(found) == 0 {
		if err != nil {
			return err
		}
		if derr != nil {
			return fmt.Errorf("no provider of %s known: %w", c, derr)
		}
		return fmt.Errorf("no provider of %s known (gossip or DHT)", c)
	}
	if _, err = n.fetcher.Fetch(ctx, c, found, progress); err != nil {
		return err
	}
	return n.complete(ctx, c, meta)
}

func (n *Node) complete(ctx context.Context, c cid.Cid, meta store.Meta) error {
	meta.Pinned = false
	n.mu.Lock()
	meta.Requested = n.requested[c.String()]
	n.mu.Unlock()
	if err := n.store.Complete(ctx, c, meta); err != nil {
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

// stopContext returns a context cancelled when the node stops.
func (n *Node) stopContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-n.quit:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}
