package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/internal/slogutil"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/config"
	"github.com/expertd/expertd/node/gossip"
	"github.com/expertd/expertd/node/handoff"
	"github.com/expertd/expertd/node/store"
)

// Which experts go to the inference server (handoff.Policy from the
// inference.* keys), why the others do not, and resolving a name for the
// server's resolver plugin.

// policyOf is the hand-off policy of the inference.* keys.
func policyOf(c config.InferenceConfig) handoff.Policy {
	return handoff.Policy{
		ServedModel: c.ServedModel, BaseAliases: c.BaseModelAliases,
		AcceptUnknownBase: c.AcceptUnknownBase, MaxLoRARank: c.MaxLoRARank,
	}
}

// handoffOptions are the handoff.Options of the inference.* keys, log the
// hand-off's logger.
func handoffOptions(n *Node, log *slog.Logger) handoff.Options {
	c := n.cfg.Inference
	if c.AdaptersDir != "" && c.ServedModel == "" {
		n.log.Warn("inference.served_model is not set: experts of every base model are handed to the inference server")
	}
	return handoff.Options{
		Dir: c.AdaptersDir, ServerDir: c.ServerAdaptersDir, Policy: policyOf(c), Grace: c.VersionGrace,
		DType: c.DType, VLLMURL: c.VLLMURL, VLLMAPIKey: c.VLLMAPIKey,
		Backoff: c.RetryBackoff, MaxBackoff: c.RetryMaxBackoff, Check: c.VLLMCheck, Logger: log,
		MaxOutput: n.cfg.Store.OutputLimit(),
	}
}

// announced is what the policy can check of an expert before holding it.
func announced(peftType, base string, rank int) handoff.Announced {
	return handoff.Announced{PeftType: peftType, BaseModel: base, Rank: rank}
}

// loadable reports whether an announced expert could go to the inference
// server, as far as its announcement tells (its PEFT type, base model and
// rank): want rules fetch nothing the server would refuse. With the
// hand-off off, any.
func (n *Node) loadable(e gossip.Entry) bool {
	// What it says it expands to must fit (a claim: the container's header
	// is checked again before anything is written).
	if err := compress.CheckOutput(compress.ParamsOutputBytes(e.Params, n.cfg.Inference.DType), n.cfg.Store.OutputLimit()); err != nil {
		n.log.Debug("not prefetched", slogutil.CID(e.CID), slogutil.Name(e.Name), slogutil.Err(err))
		return false
	}
	if !n.handoffOn() {
		return true
	}
	if r := n.handoff.Policy().CheckAnnounced(announced(e.PeftType, e.BaseModel, e.Rank)); r != nil {
		n.log.Debug("not prefetched for the inference server", slogutil.CID(e.CID), slogutil.Name(e.Name), "reason", r.Reason)
		return false
	}
	return true
}

// notHandedOff says why a held expert is not with the inference server:
// untrusted, refused by the policy when it was tried, or, not tried yet,
// what its metadata tells. Nil with the hand-off off.
func (n *Node) notHandedOff(m store.Meta) *api.Refusal {
	if !n.handoffOn() {
		return nil
	}
	if !n.trustedMeta(m) {
		return untrusted()
	}
	if r := n.handoff.Refused(m.CID); r != nil {
		return &api.Refusal{Reason: r.Reason, Detail: r.Detail}
	}
	return apiRefusal(n.handoff.Policy().CheckAnnounced(announced(m.PeftType, m.BaseModel, m.Rank)))
}

// wouldRefuse says why an expert known from the swarm would not go to the
// inference server.
func (n *Node) wouldRefuse(e gossip.Entry) *api.Refusal {
	if !n.handoffOn() {
		return nil
	}
	if !n.trustedEntry(e) {
		return untrusted()
	}
	return apiRefusal(n.handoff.Policy().CheckAnnounced(announced(e.PeftType, e.BaseModel, e.Rank)))
}

func untrusted() *api.Refusal {
	return &api.Refusal{Reason: handoff.ReasonUntrusted, Detail: "not from a trusted publisher (trust.publishers); fetch it by CID to vouch for it"}
}

func apiRefusal(r *handoff.Refusal) *api.Refusal {
	if r == nil {
		return nil
	}
	return &api.Refusal{Reason: r.Reason, Detail: r.Detail}
}

// resolveWait bounds how long resolve waits for a fetch.
const resolveWait = 10 * time.Minute

// resolve fetches (if needed) and materializes the trusted expert called
// name ("name" or "publisher/name") for the inference server, for the base
// model r.BaseModel if set (vLLM's resolver passes the `vllm serve` model
// argument): the latest version of the name's line (resolveName) that the
// policy would hand off for that base, among trusted publishers' only. A
// name no line has (experts published before versions) resolves as
// resolveTarget says.
func (n *Node) resolve(ctx context.Context, name string, r api.ResolveRequest) (api.Materialized, error) {
	if !n.handoffOn() {
		return api.Materialized{}, fmt.Errorf("%w: inference.adapters_dir is not set", api.ErrUnavailable)
	}
	p := n.handoff.Policy()
	if r.BaseModel != "" {
		if p.ServedModel != "" && r.BaseModel != p.ServedModel && !slices.Contains(p.BaseAliases, r.BaseModel) {
			return api.Materialized{}, fmt.Errorf("this node hands off experts for %q (inference.served_model), not %q: %w", p.ServedModel, r.BaseModel, api.ErrNotFound)
		}
		if p.ServedModel == "" {
			p.ServedModel = r.BaseModel
		}
	}
	ref, err := parseNameRef(name)
	if err != nil {
		return api.Materialized{}, err
	}
	target := ""
	handable := func(a gossip.Announcement) bool {
		return p.CheckAnnounced(announced(a.PeftType, a.BaseModel, a.Rank)) == nil && n.handoff.Refused(a.CID.String()) == nil
	}
	if v, ok := n.resolveName(ref, n.versionsOf(ref.name), false, handable); ok {
		target = v.a.CID.String()
	} else if ref.publisher == "" {
		target = n.resolveTarget(name, p)
	}
	if target == "" {
		return api.Materialized{}, fmt.Errorf("no trusted expert named %q for base model %q is known: %w", name, p.ServedModel, api.ErrNotFound)
	}
	c, err := cid.Decode(target)
	if err != nil {
		return api.Materialized{}, err
	}
	if err := n.waitFetched(ctx, c); err != nil {
		return api.Materialized{}, err
	}
	m, err := n.store.Get(c)
	if err != nil {
		return api.Materialized{}, err
	}
	placed, err := n.materialize(ctx, m)
	if err != nil {
		return api.Materialized{}, err
	}
	return api.Materialized{CID: target, Dir: placed.Dir, Name: placed.Name, Path: placed.ServerPath, LoRAIntID: handoff.LoRAIntID(target)}, nil
}

// resolveTarget picks the CID of the expert name resolves to under policy
// p, "" if none: the one the name's adapter link is bound to, else a held
// one, else one the swarm announces, each trusted and passing p.
func (n *Node) resolveTarget(name string, p handoff.Policy) string {
	named := func(expert string) bool {
		s, err := handoff.SanitizeName(expert)
		return expert == name || (err == nil && s == name)
	}
	var held, remote []string
	for _, m := range n.store.List() {
		if named(m.Name) && n.trustedMeta(m) && n.handoff.Refused(m.CID) == nil &&
			p.CheckAnnounced(announced(m.PeftType, m.BaseModel, m.Rank)) == nil {
			held = append(held, m.CID)
		}
	}
	for _, e := range n.gossip.View().List(gossip.Filter{Name: name}) {
		if named(e.Name) && n.trustedEntry(e) && p.CheckAnnounced(announced(e.PeftType, e.BaseModel, e.Rank)) == nil {
			remote = append(remote, e.CID.String())
		}
	}
	if bound, ok := n.handoff.Bound(name); ok && (slices.Contains(held, bound) || slices.Contains(remote, bound)) {
		return bound
	}
	slices.Sort(held)
	slices.Sort(remote)
	if len(held) > 0 {
		return held[0]
	}
	if len(remote) > 0 {
		return remote[0]
	}
	return ""
}

// waitFetched fetches c unless it is held, and waits for the fetch.
func (n *Node) waitFetched(ctx context.Context, c cid.Cid) error {
	if _, err := n.store.Get(c); err == nil {
		return nil
	}
	t, err := n.startFetch(c, false)
	if err != nil || t == nil { // t nil: held already
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, resolveWait)
	defer cancel()
	select {
	case <-t.done:
		if err := t.outcome(); err != nil {
			return fmt.Errorf("fetch %s: %w", c, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handoffErr maps a hand-off error to the API's.
func handoffErr(err error) error {
	switch {
	case errors.Is(err, handoff.ErrRefused):
		return fmt.Errorf("%w: %w", api.ErrConflict, err)
	case errors.Is(err, handoff.ErrConflict) || errors.Is(err, handoff.ErrName):
		return fmt.Errorf("%w: %v", api.ErrConflict, err)
	}
	return err
}
