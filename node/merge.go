package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/gossip"
	"github.com/expertd/expertd/node/store"
)

// A merge holds its inputs dense in memory (4 bytes a parameter) and a
// result about as large, so the node runs one at a time, refuses one whose
// parents would not fit in its memory budget, and bounds its time.
const (
	// mergeTimeout bounds a merge, its fetches included.
	mergeTimeout = 30 * time.Minute
	// mergeBytesPerParam is what a merge holds per parent parameter:
	// the parent's float32 values and, at most as many, the result's.
	mergeBytesPerParam = 8
	// defaultMergeMemory is the budget where the machine's memory is
	// unknown; elsewhere it is half of it.
	defaultMergeMemory = 4 << 30
)

// merger runs the node's merges one at a time; its zero value is ready.
type merger struct {
	once   sync.Once
	slot   chan struct{}
	budget int64 // bytes; 0 until set (tests set it first)
}

func (m *merger) init() {
	m.once.Do(func() {
		m.slot = make(chan struct{}, 1)
		if m.budget == 0 {
			m.budget = memoryBudget()
		}
	})
}

// Merge implements api.Backend: it merges the experts r.Parents (by CID,
// fetched first when not held) with compress.Merge, compresses the result
// into a container, and stores and pins it; with r.Publish it publishes it
// as Publish does, its provenance (method, parents) in the signed
// publication. It is all or nothing, bounded in time (mergeTimeout, and the
// request's context: a client that goes away cancels it) and memory.
func (n *Node) Merge(ctx context.Context, r api.MergeRequest) (api.Expert, error) {
	parents, opts, err := n.checkMerge(r)
	if err != nil {
		return api.Expert{}, err
	}
	n.merge.init()
	if err := n.checkMergeMemory(parents, false); err != nil {
		return api.Expert{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, mergeTimeout)
	defer cancel()
	select {
	case n.merge.slot <- struct{}{}:
		defer func() { <-n.merge.slot }()
	case <-ctx.Done():
		return api.Expert{}, fmt.Errorf("waiting for the merge running: %w", ctx.Err())
	}
	for _, c := range parents {
		if err := n.waitFetched(ctx, c); err != nil {
			return api.Expert{}, fmt.Errorf("parent %s: %w", c, err)
		}
	}
	if err := n.checkMergeMemory(parents, true); err != nil { // held now: their own headers
		return api.Expert{}, err
	}
	in, err := n.mergeInputs(ctx, parents)
	if err != nil {
		return api.Expert{}, err
	}
	if err := n.checkMergeWork(in, opts.merge); err != nil {
		return api.Expert{}, err
	}
	merged, prov, err := compress.Merge(ctx, in, opts.merge)
	if err != nil {
		return api.Expert{}, mergeErr(err)
	}
	file, err := n.encodeMerged(merged, opts.encode)
	if err != nil {
		return api.Expert{}, err
	}
	defer os.Remove(file)
	name := r.Name
	if name == "" {
		name = mergeName(prov)
	}
	n.log.Info("merged", "method", prov.Method, "parents", len(parents), "name", name, "publish", r.Publish)
	if r.Publish {
		return n.Publish(ctx, api.PublishRequest{Path: file, Name: name})
	}
	return n.storeMerged(ctx, file, name)
}

// mergeOptions are a request's options for compress.
type mergeOptions struct {
	merge  compress.MergeOptions
	encode []compress.Option
}

// checkMerge checks a request before anything is fetched or read.
func (n *Node) checkMerge(r api.MergeRequest) ([]cid.Cid, mergeOptions, error) {
	var o mergeOptions
	if len(r.Parents) < 2 || len(r.Parents) > compress.MaxMergeInputs {
		return nil, o, fmt.Errorf("%w: merge needs 2 to %d parents, got %d", api.ErrBadRequest, compress.MaxMergeInputs, len(r.Parents))
	}
	parents := make([]cid.Cid, len(r.Parents))
	for i, s := range r.Parents {
		c, err := parseCID(s)
		if err != nil {
			return nil, o, fmt.Errorf("parent %d: %w", i+1, err)
		}
		parents[i] = c
	}
	if r.Name != "" {
		if err := gossip.CheckName(r.Name); err != nil {
			return nil, o, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
		}
	}
	density := r.Density
	if density == 0 {
		density = compress.DefaultMergeDensity
	}
	o.encode = []compress.Option{compress.WithDensity(density)}
	if r.Refit == nil || *r.Refit {
		o.encode = append(o.encode, compress.WithRefit(compress.DefaultRefit)) // LoRA only: dropped for others
	}
	if err := compress.CheckOptions(o.encode...); err != nil {
		return nil, o, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	o.merge = compress.MergeOptions{Method: r.Method, Weights: r.Weights, Lambda: r.Lambda, Trim: r.Trim, Rank: r.Rank}
	if err := compress.CheckMergeOptions(o.merge, len(parents)); err != nil {
		return nil, o, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	return parents, o, nil
}

// checkMergeMemory refuses a merge whose parents hold more parameters than
// the budget: from what gossip or the store says of them, or, with held,
// from the headers of the stored containers.
func (n *Node) checkMergeMemory(parents []cid.Cid, held bool) error {
	var params int64
	for _, c := range parents {
		if m, err := n.store.Get(c); err == nil {
			params += m.Params
		} else if e, ok := n.gossip.View().Get(c); ok && !held {
			params += e.Params
		} else if held {
			return fmt.Errorf("parent %s: %w", c, storeErr(err))
		}
	}
	need := params * mergeBytesPerParam
	if need > n.merge.budget {
		return fmt.Errorf("%w: the parents hold %d parameters, about %s in memory to merge (%d bytes each, inputs and result); this node merges at most %s",
			api.ErrConflict, params, compress.HumanBytes(need), mergeBytesPerParam, compress.HumanBytes(n.merge.budget))
	}
	return nil
}

// checkMergeWork refuses a merge whose inputs and work (the result, a
// TIES merge's dense updates: compress.MergeMemory) exceed the budget, now
// that the parents' shapes are known.
func (n *Node) checkMergeWork(in []compress.MergeInput, o compress.MergeOptions) error {
	work, err := compress.MergeMemory(in, o)
	if err != nil {
		return mergeErr(err)
	}
	var params int64
	for _, x := range in {
		params += x.Source.Params()
	}
	if need := 4*params + work; need > n.merge.budget {
		return fmt.Errorf("%w: merging these parents takes about %s of memory (%s of inputs, %s of work); this node merges at most %s",
			api.ErrConflict, compress.HumanBytes(need), compress.HumanBytes(4*params), compress.HumanBytes(work), compress.HumanBytes(n.merge.budget))
	}
	return nil
}

// mergeInputs decodes the stored parents, each bounded by what is left of
// the budget whatever its header claims.
func (n *Node) mergeInputs(ctx context.Context, parents []cid.Cid) ([]compress.MergeInput, error) {
	left := n.merge.budget / mergeBytesPerParam // parameters
	in := make([]compress.MergeInput, len(parents))
	for i, c := range parents {
		m, err := n.store.Get(c)
		if err != nil {
			return nil, fmt.Errorf("parent %s: %w", c, storeErr(err))
		}
		in[i] = compress.MergeInput{Name: m.Name, CID: c.String()}
		if in[i].Name == "" {
			in[i].Name = c.String()
		}
		if left <= 0 {
			return nil, fmt.Errorf("%w: parent %s: over this node's merge memory", api.ErrConflict, c)
		}
		rc, err := n.store.Open(ctx, c)
		if err != nil {
			return nil, err
		}
		in[i].Source, err = compress.ReadSource(bufio.NewReaderSize(rc, 1<<20), compress.WithMaxElements(left))
		rc.Close()
		if err != nil {
			if errors.Is(err, compress.ErrLimit) {
				return nil, fmt.Errorf("%w: parent %s: %v (this node merges at most %s)", api.ErrConflict, c, err, compress.HumanBytes(n.merge.budget))
			}
			return nil, fmt.Errorf("parent %s: %w", c, err)
		}
		left -= in[i].Source.Params()
	}
	return in, nil
}

// encodeMerged compresses the merged expert into a temporary container
// under the data dir and returns its path. The refit applies to LoRA only.
func (n *Node) encodeMerged(src *compress.Source, opts []compress.Option) (string, error) {
	if src.PeftType != compress.PeftTypeLoRA {
		opts = opts[:1] // the density alone
	}
	f, err := os.CreateTemp(n.cfg.DataDir(), ".merge-*.cpeft")
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	_, _, err = compress.Encode(w, src, opts...)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", mergeErr(err)
	}
	abs, err := filepath.Abs(f.Name()) // Publish takes absolute paths; data_dir may be relative
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return abs, nil
}

// storeMerged stores and pins an unpublished merged expert under name.
func (n *Node) storeMerged(ctx context.Context, file, name string) (api.Expert, error) {
	h, err := checkContainer(file)
	if err != nil {
		return api.Expert{}, err
	}
	st, err := os.Stat(file)
	if err != nil {
		return api.Expert{}, err
	}
	meta := store.MetaFromHeader(h)
	meta.Size, meta.Name, meta.Publisher, meta.Pinned = st.Size(), name, n.p2p.ID().String(), true
	c, err := n.store.AddFile(ctx, file, meta)
	if err != nil {
		return api.Expert{}, storeErr(err)
	}
	if err := n.store.Update(c, func(m *store.Meta) { m.Pinned = true }); err != nil {
		return api.Expert{}, storeErr(err)
	}
	m, err := n.store.Get(c)
	if err != nil {
		return api.Expert{}, err
	}
	return expertFromMeta(m), nil
}

// mergeName is a merged expert's default name: its parents' names joined
// by "+", cut to a name the swarm accepts.
func mergeName(p *compress.Provenance) string {
	names := make([]string, len(p.Parents))
	for i, x := range p.Parents {
		names[i] = x.Name
	}
	s := strings.Join(names, "+")
	const limit = 200
	for len(s) > limit {
		_, size := lastRune(s)
		s = s[:len(s)-size]
	}
	return s
}

func lastRune(s string) (rune, int) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i]&0xc0 != 0x80 {
			return rune(s[i]), len(s) - i
		}
	}
	return 0, len(s)
}

// mergeErr gives the codec's errors about the experts or options their
// API kind.
func mergeErr(err error) error {
	if errors.Is(err, compress.ErrInput) || errors.Is(err, compress.ErrOption) || errors.Is(err, compress.ErrShape) {
		return fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	return err
}

// signedMerge reads the provenance a merged container records
// (compress.MergeMetadataKey) for its publication: nil for a container
// that is not a merge.
func signedMerge(h *compress.Header) (*gossip.Merge, error) {
	raw, ok := h.Metadata[compress.MergeMetadataKey]
	if !ok {
		return nil, nil
	}
	var p compress.Provenance
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return nil, fmt.Errorf("metadata %s: %v", compress.MergeMetadataKey, err)
	}
	m := &gossip.Merge{Method: p.Method, Parents: make([]cid.Cid, len(p.Parents))}
	for i, x := range p.Parents {
		if x.CID == "" {
			continue
		}
		c, err := cid.Decode(x.CID)
		if err != nil {
			return nil, fmt.Errorf("metadata %s: parent %d: %v", compress.MergeMetadataKey, i+1, err)
		}
		m.Parents[i] = c
	}
	return m, nil
}

// mergeOf is the provenance an envelope signs, verified; nil without one.
func mergeOf(envelope []byte) *api.Merge {
	if len(envelope) == 0 {
		return nil
	}
	a, err := gossip.OpenPublication(envelope)
	if err != nil || a.Merge == nil {
		return nil
	}
	m := &api.Merge{Method: a.Merge.Method, Parents: make([]string, len(a.Merge.Parents))}
	for i, c := range a.Merge.Parents {
		if c.Defined() {
			m.Parents[i] = c.String()
		}
	}
	return m
}

// memoryBudget is half the machine's memory (MemTotal of /proc/meminfo),
// or defaultMergeMemory where that is unknown.
func memoryBudget() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return defaultMergeMemory
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			if kib, err := strconv.ParseInt(fields[1], 10, 64); err == nil && kib > 0 {
				return kib << 10 / 2
			}
		}
	}
	return defaultMergeMemory
}
