package fetch

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/unixfs"
)

// Options configures a Fetcher.
type Options struct {
	MaxSize      uint64        // largest expert accepted (default 4 GiB)
	MaxProviders int           // providers used at once (default 8)
	IdleTimeout  time.Duration // a stream silent this long fails (default 20s)
	// MinRate (bytes/s) sets the whole fetch's deadline once the size is
	// known: 30s + size/MinRate (default 64 KiB/s).
	MinRate    float64
	BadPeerTTL time.Duration // how long a peer that sent a bad block is avoided (default 10m)
	// Stall ends a fetch that has had no new leaf (nor an offer of one)
	// for this long: its providers stayed busy or slow, or its partial
	// holders never got what it lacks (default 30s).
	Stall time.Duration
	// DirectWait is how long a request to a provider reached only through
	// a relay waits for a direct connection (a hole punch) before it runs
	// on the relayed one, counted from when that opened (default
	// DefaultDirectWait).
	DirectWait time.Duration
	Logger     *slog.Logger
	// Received, if set, is called for every verified block stored.
	Received func(p peer.ID, bytes int)
	// Rejected, if set, is called when a peer's block or header fails
	// verification.
	Rejected func(p peer.ID)
	// Failed, if set, is called when a provider could not serve root (it
	// was unreachable, refused, broke off or sent bad data).
	Failed func(root cid.Cid, p peer.ID, err error)
	// Stored, if set, is called for every leaf of root verified and
	// stored: Provider.Stored, so that the provider on the same store
	// tells the peers watching it.
	Stored func(root cid.Cid, leaf uint64)
	// Provider, if set, is this node's provider: a fetch given the
	// expert's outboard hash (WithOutboard) checks each piece of a leaf as
	// it arrives and lets the provider serve the leaf on meanwhile.
	Provider *Provider
}

func (o *Options) defaults() {
	if o.MaxSize == 0 {
		o.MaxSize = 4 << 30
	}
	if o.MaxProviders == 0 {
		o.MaxProviders = 8
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 20 * time.Second
	}
	if o.MinRate == 0 {
		o.MinRate = 64 << 10
	}
	if o.BadPeerTTL == 0 {
		o.BadPeerTTL = 10 * time.Minute
	}
	if o.Stall == 0 {
		o.Stall = 30 * time.Second
	}
	if o.DirectWait == 0 {
		o.DirectWait = DefaultDirectWait
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Progress reports a fetch's state: bytes and leaves held of the total.
type Progress struct {
	Bytes, Total   uint64
	Leaves, OfLeaf int
}

// Fetcher pulls experts from providers into a block store.
type Fetcher struct {
	host   host.Host
	blocks Blocks
	opts   Options

	now func() time.Time // the clock (tests move it)

	mu  sync.Mutex
	bad map[peer.ID]time.Time // peers that sent blocks failing verification
}

// NewFetcher returns a Fetcher writing into b.
func NewFetcher(h host.Host, b Blocks, o Options) *Fetcher {
	o.defaults()
	return &Fetcher{host: h, blocks: b, opts: o, now: time.Now, bad: map[peer.ID]time.Time{}}
}

// IsBad reports whether p sent a block that failed verification less
// than Options.BadPeerTTL ago: no fetch asks it meanwhile.
func (f *Fetcher) IsBad(p peer.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.bad[p]
	if ok && f.now().Sub(t) > f.opts.BadPeerTTL {
		delete(f.bad, p)
		return false
	}
	return ok
}

func (f *Fetcher) markBad(p peer.ID) {
	f.mu.Lock()
	f.bad[p] = f.now()
	f.mu.Unlock()
}

// Fetch makes every block of root present in the store, fetching what is
// missing from providers (one request per provider, the leaves split between
// them, work re-assigned from failed or slow ones). Blocks already held are
// not fetched again. On success it returns the verified layout; on failure
// the verified blocks stay stored so a later Fetch resumes.
func (f *Fetcher) Fetch(ctx context.Context, root cid.Cid, providers []peer.ID, progress func(Progress), opts ...FetchOption) (*unixfs.Layout, error) {
	return f.FetchFrom(ctx, root, func() []peer.ID { return providers }, progress, opts...)
}

// FetchFrom is Fetch from the providers that providers returns, which it
// calls again while the fetch runs: peers that start holding the expert
// meanwhile (partial holders among them) join the fetch.
func (f *Fetcher) FetchFrom(ctx context.Context, root cid.Cid, providers func() []peer.ID, progress func(Progress), opts ...FetchOption) (*unixfs.Layout, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var fo fetchOptions
	for _, o := range opts {
		o(&fo)
	}
	cfg := stateConfig{self: f.host.ID(), maxProviders: f.opts.MaxProviders, stall: f.opts.Stall, minRate: f.opts.MinRate}
	lp := &loop{
		f: f, root: root, src: providers, progress: progress, events: make(chan event, 16),
		streams: map[reqID]context.CancelFunc{}, watches: map[peer.ID]context.CancelFunc{},
		state: newFetchState(cfg, root, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))),
	}
	if len(fo.outboard) > 0 && f.opts.Provider != nil {
		lp.flow = &fetchFlow{want: fo.outboard, flows: f.opts.Provider.flows, root: root}
		defer lp.flow.end()
	}
	defer lp.stop()
	start := evStart{}
	if l, err := localLayout(ctx, f.blocks, root, f.opts.MaxSize); err == nil {
		start.layout, start.held = l, f.heldLeaves(l)
		if !slices.Contains(start.held, false) {
			return l, nil
		}
	}
	start.peers = f.usable(providers())
	return lp.run(ctx, start)
}

// heldLeaves reports which of l's leaves the store holds.
func (f *Fetcher) heldLeaves(l *unixfs.Layout) []bool {
	held := make([]bool, len(l.Leaves))
	for i, leaf := range l.Leaves {
		ok, err := f.blocks.HasBlock(leaf.Cid)
		held[i] = err == nil && ok
	}
	return held
}

// usable drops from ps the peers that sent a bad block lately.
func (f *Fetcher) usable(ps []peer.ID) []peer.ID {
	return slices.DeleteFunc(slices.Clone(ps), f.IsBad)
}

// loop runs one fetch: it feeds its fetchState what happens (streams'
// headers, leaves and ends, the passing time, new providers) and carries
// out the actions it answers. It owns the state; streams only send it
// events.
type loop struct {
	f        *Fetcher
	root     cid.Cid
	src      func() []peer.ID // providers, polled while the fetch runs
	progress func(Progress)
	state    *fetchState
	events   chan event
	streams  map[reqID]context.CancelFunc // running requests
	watches  map[peer.ID]context.CancelFunc
	stored   storedLeaves // the leaves its requests stored
	flow     *fetchFlow   // nil: leaves are checked whole, not served on as they arrive
}

func (lp *loop) run(ctx context.Context, start evStart) (*unixfs.Layout, error) {
	evs := []event{start}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	wake := time.NewTimer(time.Hour) // a busy peer's wait ends
	defer wake.Stop()
	for {
		for _, ev := range evs {
			if done, err := lp.apply(ctx, ev); done {
				if err != nil {
					return nil, err
				}
				return lp.state.layout, nil
			}
		}
		if at := lp.state.wakeAt(); !at.IsZero() {
			wake.Reset(max(at.Sub(lp.f.now()), 0))
		} else {
			wake.Stop()
		}
		var ev event
		select {
		case ev = <-lp.events:
		case <-tick.C:
			ev = evTick{peers: lp.f.usable(lp.src())}
		case <-wake.C:
			ev = evTick{peers: lp.f.usable(lp.src())}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		evs = []event{ev}
		switch ev := ev.(type) {
		case evWatchEnd:
			delete(lp.watches, ev.peer)
		case evEnd:
			delete(lp.streams, ev.req)
			if ctx.Err() != nil { // the fetch is cancelled, not the provider failing
				return nil, ctx.Err()
			}
		case evHeader:
			if lp.state.layout != nil {
				break
			}
			// The first header tells the layout. Its nodes are stored
			// first: a restarted fetch resumes from them.
			for _, b := range ev.layout.Nodes {
				if err := lp.f.blocks.PutBlock(b.Cid, b.Data); err != nil {
					return nil, fmt.Errorf("store node: %w", err)
				}
			}
			evs = []event{evLayout{layout: ev.layout, held: lp.f.heldLeaves(ev.layout)}, ev}
		}
	}
}

// apply applies ev to the state and carries out the actions; done when
// the fetch is over (err nil: complete).
func (lp *loop) apply(ctx context.Context, ev event) (done bool, err error) {
	for _, a := range lp.state.apply(ev, lp.f.now()) {
		if log := lp.f.opts.Logger; log.Enabled(ctx, slog.LevelDebug) {
			log.Debug("fetch: scheduler", "event", fmt.Sprintf("%T%+v", ev, ev), "action", fmt.Sprintf("%T%+v", a, a))
		}
		switch a := a.(type) {
		case doSend:
			lp.send(ctx, a)
		case doCancel:
			if cancel := lp.streams[a.req]; cancel != nil {
				cancel()
			}
		case doWatch:
			lp.watch(ctx, a.peer)
		case doDrop:
			lp.drop(a)
		case doProgress:
			if lp.progress != nil {
				lp.progress(a.Progress)
			}
		case doFinish:
			return true, a.err
		}
	}
	return false, nil
}

// drop reports a provider that failed this fetch; one that sent a bad
// block is avoided by every fetch for BadPeerTTL.
func (lp *loop) drop(a doDrop) {
	f := lp.f
	if a.bad {
		f.markBad(a.peer)
		if f.opts.Rejected != nil {
			f.opts.Rejected(a.peer)
		}
		f.opts.Logger.Warn("fetch: peer sent a block that failed verification", "peer", a.peer, "cid", lp.root, "err", a.err)
	} else {
		f.opts.Logger.Info("fetch: provider failed", "peer", a.peer, "cid", lp.root, "err", a.err)
	}
	if f.opts.Failed != nil {
		f.opts.Failed(lp.root, a.peer, a.err)
	}
}

// send runs a request on its own stream; the stream reports to events.
func (lp *loop) send(ctx context.Context, a doSend) {
	sctx, cancel := context.WithCancel(ctx)
	lp.streams[a.req] = cancel
	r := streamReq{id: a.req, peer: a.peer, msg: a.ask.wire(lp.root), known: lp.state.layout, stored: &lp.stored, flow: lp.flow}
	r.msg.Outboard = lp.flow.asking()
	go func() {
		err := lp.f.request(sctx, r, lp.root, lp.events)
		cancel()
		lp.events <- evEnd{req: r.id, err: err}
	}()
}

// watch runs a watch of p on a stream of its own; it reports to events.
func (lp *loop) watch(ctx context.Context, p peer.ID) {
	wctx, cancel := context.WithCancel(ctx)
	lp.watches[p] = cancel
	layout := lp.state.layout
	go func() {
		err := lp.f.watch(wctx, p, lp.root, layout, lp.events)
		cancel()
		lp.events <- evWatchEnd{peer: p, err: err}
	}()
}

// stop cancels every running request and watch and waits for its end, so
// that no stream outlives the fetch.
func (lp *loop) stop() {
	for _, cancel := range lp.streams {
		cancel()
	}
	for _, cancel := range lp.watches {
		cancel()
	}
	for len(lp.streams) > 0 || len(lp.watches) > 0 {
		switch end := (<-lp.events).(type) {
		case evEnd:
			delete(lp.streams, end.req)
		case evWatchEnd:
			delete(lp.watches, end.peer)
		}
	}
}
