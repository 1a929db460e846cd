package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/gossip"
	"github.com/expertd/expertd/node/handoff"
	"github.com/expertd/expertd/node/store"
)

// The hand-off to the inference server: experts this node holds are
// written into inference.adapters_dir (and loaded into vLLM), experts that
// match inference.want are fetched as soon as gossip announces them, and
// /v1/resolve/{name} fetches and materializes one on demand.

func newHandoff(n *Node) (*handoff.Handoff, []handoff.Rule, error) {
	c := n.cfg.Inference
	h, err := handoff.New(handoff.Options{
		Dir: c.AdaptersDir, ServedModel: c.ServedModel, DType: c.DType, VLLMURL: c.VLLMURL, VLLMAPIKey: c.VLLMAPIKey,
		Backoff: c.RetryBackoff, MaxBackoff: c.RetryMaxBackoff, Check: c.VLLMCheck, Logger: n.log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("inference.adapters_dir: %w", err)
	}
	rules, err := handoff.ParseRules(c.Want)
	if err != nil {
		return nil, nil, fmt.Errorf("inference.want: %w", err)
	}
	return h, rules, nil
}

// handoffOn reports whether experts are materialized for a server.
func (n *Node) handoffOn() bool { return n.handoff.Dir() != "" }

// materialize writes a stored expert into the adapters dir, when the
// hand-off is on and the expert is an adapter from a trusted publisher.
func (n *Node) materialize(ctx context.Context, m store.Meta) (string, error) {
	if !n.handoffOn() {
		return "", fmt.Errorf("%w: inference.adapters_dir is not set", api.ErrUnavailable)
	}
	if m.PeftType == compress.PeftTypeFull {
		return "", fmt.Errorf("%w: %s is a full fine-tuning residual, not an adapter", api.ErrBadRequest, m.CID)
	}
	if !n.trustedMeta(m) {
		return "", fmt.Errorf("%w: %s is not from a trusted publisher (trust.publishers)", api.ErrConflict, m.CID)
	}
	c, err := cid.Decode(m.CID)
	if err != nil {
		return "", err
	}
	dir, err := n.handoff.Materialize(ctx, m.CID, m.Name, func() (io.ReadCloser, error) { return n.store.Open(ctx, c) })
	if err != nil {
		n.metrics.HandoffFailed()
		if errors.Is(err, handoff.ErrConflict) || errors.Is(err, handoff.ErrName) {
			return "", fmt.Errorf("%w: %v", api.ErrConflict, err)
		}
		return "", err
	}
	n.metrics.Materialized()
	return dir, nil
}

// handOff materializes m in the background if the hand-off is on.
func (n *Node) handOff(m store.Meta) {
	if !n.handoffOn() || m.PeftType == compress.PeftTypeFull || !n.trustedMeta(m) {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := n.stopContext()
		defer cancel()
		if dir, err := n.materialize(ctx, m); err != nil {
			n.log.Warn("hand-off failed", "cid", m.CID, "name", m.Name, "err", err)
		} else {
			n.log.Info("handed off", "cid", m.CID, "dir", dir)
		}
	}()
}

// serveInference runs the vLLM call queue, brings the adapters dir in line
// with the store, and prefetches experts that match inference.want.
func (n *Node) serveInference(ctx context.Context) error {
	if !n.handoffOn() && len(n.want) == 0 {
		return nil
	}
	errc := make(chan error, 1)
	go func() { errc <- n.handoff.Serve(ctx) }()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { n.servePrefetch(ctx) })
	if n.handoffOn() {
		n.syncAdapters(ctx)
	}
	failed := uint64(0)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return <-errc
		case <-tick.C: // vLLM failures happen in the queue; count them
			st := n.handoff.Stats()
			for f := st.LoadFailed + st.UnloadFailed; failed < f; failed++ {
				n.metrics.HandoffFailed()
			}
		}
	}
}

// syncAdapters materializes every held expert and removes adapters whose
// expert is gone.
func (n *Node) syncAdapters(ctx context.Context) {
	held := map[string]bool{}
	for _, m := range n.store.List() {
		held[m.CID] = true
		n.handOff(m)
	}
	on, err := n.handoff.Scan()
	if err != nil {
		n.log.Warn("scan adapters dir", "err", err)
		return
	}
	for _, mk := range on {
		if !held[mk.CID] {
			if err := n.handoff.Remove(ctx, mk.CID, mk.Name); err != nil {
				n.log.Warn("remove stale adapter", "name", mk.Name, "err", err)
			}
		}
	}
}

// Resolve implements api.Backend: it fetches (if needed) and materializes
// the expert called name and returns its directory, for servers that
// resolve adapters on first use.
func (n *Node) Resolve(ctx context.Context, name string) (api.Materialized, error) {
	if !n.handoffOn() {
		return api.Materialized{}, fmt.Errorf("%w: inference.adapters_dir is not set", api.ErrUnavailable)
	}
	var target string
	for _, m := range n.store.List() {
		if m.Name == name {
			target = m.CID
		}
	}
	if target == "" { // names are claims: only trusted experts, the served model's first
		for _, e := range n.gossip.View().List(gossip.Filter{Name: name}) {
			if e.Name != name || !n.trustedEntry(e) {
				continue
			}
			if target == "" || e.BaseModel == n.cfg.Inference.ServedModel {
				target = e.CID.String()
			}
		}
	}
	if target == "" {
		return api.Materialized{}, fmt.Errorf("no expert named %q is known: %w", name, api.ErrNotFound)
	}
	if _, err := n.StartFetch(target); err != nil {
		return api.Materialized{}, err
	}
	for {
		t, err := n.Transfer(target)
		if err != nil {
			return api.Materialized{}, err
		}
		if t.State == api.StateFailed {
			return api.Materialized{}, fmt.Errorf("fetch %s: %s", target, t.Error)
		}
		if t.State == api.StateDone {
			break
		}
		select {
		case <-ctx.Done():
			return api.Materialized{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	c, _ := cid.Decode(target)
	m, err := n.store.Get(c)
	if err != nil {
		return api.Materialized{}, err
	}
	dir, err := n.materialize(ctx, m)
	if err != nil {
		return api.Materialized{}, err
	}
	return api.Materialized{CID: target, Dir: dir}, nil
}

// trustedPeers is trust.publishers plus this node itself.
func (n *Node) trustedPeers() []peer.ID {
	if len(n.cfg.Trust.Publishers) == 0 {
		return nil
	}
	out := []peer.ID{n.host.ID()}
	for _, s := range n.cfg.Trust.Publishers {
		if p, err := peer.Decode(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// trustedMeta applies trust.publishers to a stored expert: with an empty
// list everyone is trusted; otherwise only an expert whose publication
// envelope verifies and names a listed publisher (or this node).
func (n *Node) trustedMeta(m store.Meta) bool {
	pubs := n.trustedPeers()
	if pubs == nil {
		return true
	}
	if len(m.Envelope) == 0 {
		return false
	}
	a, err := gossip.OpenPublication(m.Envelope)
	if err != nil || a.CID.String() != m.CID {
		return false
	}
	return slices.Contains(pubs, a.Publisher)
}

// trustedEntry applies trust.publishers to an expert known from the swarm.
func (n *Node) trustedEntry(e gossip.Entry) bool {
	pubs := n.trustedPeers()
	return pubs == nil || gossip.Trusted(e, pubs)
}
