package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/internal/slogutil"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/gossip"
	"github.com/expertd/expertd/node/handoff"
	"github.com/expertd/expertd/node/store"
)

// The hand-off to the inference server: experts this node holds are
// written into inference.adapters_dir (and loaded into vLLM), experts that
// match inference.want are fetched as soon as gossip announces them, and
// /v1/resolve/{name} fetches and materializes one on demand.

func newHandoff(n *Node, log *slog.Logger) (*handoff.Handoff, []handoff.Rule, error) {
	c := n.cfg.Inference
	h, err := handoff.New(handoffOptions(n, log))
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
func (n *Node) materialize(ctx context.Context, m store.Meta) (handoff.Placed, error) {
	if !n.handoffOn() {
		return handoff.Placed{}, fmt.Errorf("%w: inference.adapters_dir is not set", api.ErrUnavailable)
	}
	if m.PeftType == compress.PeftTypeFull {
		return handoff.Placed{}, fmt.Errorf("%w: %s is a full fine-tuning residual, not an adapter", api.ErrBadRequest, m.CID)
	}
	if !n.trustedMeta(m) {
		return handoff.Placed{}, fmt.Errorf("%w: %s is not from a trusted publisher (trust.publishers)", api.ErrConflict, m.CID)
	}
	c, err := cid.Decode(m.CID)
	if err != nil {
		return handoff.Placed{}, err
	}
	p, err := n.handoff.MaterializeVersion(ctx, m.CID, m.Name, n.lineVersionOf(m), func() (io.ReadCloser, error) { return n.store.Open(ctx, c) })
	if err != nil {
		if !errors.Is(err, handoff.ErrRefused) {
			n.materializeFailures.Add(1) // read with handoff.Stats by snapshot
		}
		return handoff.Placed{}, handoffErr(err)
	}
	n.metrics.Materialized()
	return p, nil
}

// handOff materializes m in the background if the hand-off is on, unless
// a newer version of its line is known (it would not take the name).
func (n *Node) handOff(m store.Meta) {
	if !n.handoffOn() || m.PeftType == compress.PeftTypeFull || !n.trustedMeta(m) || n.superseded(m) {
		return
	}
	n.life.Go(func(ctx context.Context) {
		if p, err := n.materialize(ctx, m); errors.Is(err, api.ErrConflict) && errors.Is(err, handoff.ErrRefused) {
			n.log.Info("not handed off", slogutil.CID(m.CID), slogutil.Name(m.Name), "reason", err)
		} else if err != nil {
			n.log.Warn("hand-off failed", slogutil.CID(m.CID), slogutil.Name(m.Name), slogutil.Err(err))
		} else {
			n.log.Info("handed off", slogutil.CID(m.CID), slogutil.Path(p.Dir), "version", n.versionOf(m))
			n.inService(m)
		}
	})
}

// serveAdapters brings the adapters dir in line with the store, once, if
// the hand-off is on: it materializes every held expert and removes
// adapters whose expert is gone.
func (n *Node) serveAdapters(ctx context.Context) error {
	if !n.handoffOn() {
		return nil
	}
	held := map[string]bool{}
	for _, m := range n.store.List() {
		held[m.CID] = true
		n.handOff(m)
	}
	on, err := n.handoff.Scan()
	if err != nil {
		n.log.Warn("scan adapters dir", slogutil.Err(err))
		return nil
	}
	for _, mk := range on {
		if !held[mk.CID] {
			if err := n.handoff.Remove(ctx, mk.CID, mk.Name); err != nil {
				n.log.Warn("remove stale adapter", slogutil.Name(mk.Name), slogutil.Err(err))
			}
		}
	}
	return nil
}

// Resolve implements api.Backend: see resolve.
func (n *Node) Resolve(ctx context.Context, name string, r api.ResolveRequest) (api.Materialized, error) {
	return n.resolve(ctx, name, r)
}

// trustedPeers is this node and trust.publishers: the publishers whose
// signed experts it fetches for want rules and hands to the inference
// server on its own. It is nil when trust.publishers is "*".
func (n *Node) trustedPeers() []peer.ID {
	if n.cfg.Trust.Everyone() {
		return nil
	}
	out := []peer.ID{n.p2p.ID()}
	for _, s := range n.cfg.Trust.Publishers {
		if p, err := peer.Decode(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// trustedMeta reports whether a stored expert may go to the inference
// server: when trust.publishers is "*", when this node's user fetched it by
// its CID (m.Requested), or when its publication envelope verifies and names
// this node or a publisher in trust.publishers.
func (n *Node) trustedMeta(m store.Meta) bool {
	if n.cfg.Trust.Everyone() || m.Requested {
		return true
	}
	a, ok := n.publicationOf(m)
	return ok && slices.Contains(n.trustedPeers(), a.Publisher)
}

// trustedEntry reports whether an expert known from the swarm may be
// fetched for a want rule, resolved by name and handed to the inference
// server: when trust.publishers is "*", or when it is signed by this node
// or a publisher in trust.publishers.
func (n *Node) trustedEntry(e gossip.Entry) bool {
	return n.cfg.Trust.Everyone() || gossip.Trusted(e, n.trustedPeers())
}
