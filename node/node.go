package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/errgroup"

	"github.com/expertd/expertd/internal/slogutil"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/config"
	"github.com/expertd/expertd/node/fetch"
	"github.com/expertd/expertd/node/gossip"
	"github.com/expertd/expertd/node/handoff"
	"github.com/expertd/expertd/node/metrics"
	"github.com/expertd/expertd/node/p2p"
	"github.com/expertd/expertd/node/store"
)

// Files under the data dir: the node's private key and the store.
const (
	IdentityFile = "identity.key"
	StoreDir     = "store"
)

// Node is a running expertd daemon.
type Node struct {
	cfg      *config.Config
	log      *slog.Logger
	key      crypto.PrivKey // signs this node's publications
	p2p      *p2p.Host      // the libp2p host (it embeds host.Host) and its DHT
	store    *store.Store
	gossip   *gossip.Service
	provider *fetch.Provider
	fetcher  *fetch.Fetcher
	api      *api.Server
	apiLn    net.Listener
	metrics  *metrics.Metrics
	stopPS   context.CancelFunc // stops the pubsub, which outlives New's ctx
	handoff  *handoff.Handoff
	want     []handoff.Rule
	// prefetchQ orders the experts want rules follow; listedPublishers are
	// the peer IDs trust.publishers names.
	prefetchQ        *prefetchQueue
	listedPublishers map[peer.ID]bool
	lines            *lineState // names and versions (names.go)

	life      *lifetime     // the node's context and background work
	slots     chan struct{} // bounds concurrent fetches (a provider serves 4 streams per peer)
	transfers *transfers
	merge     merger // runs merges one at a time (merge.go)

	// materializeFailures counts adapter directories not written for the
	// inference server; snapshot adds vLLM's failures (handoff.Stats).
	materializeFailures atomic.Uint64
}

// New opens the store, the identity and the host, and binds the API
// listener; Serve runs everything.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) (_ *Node, err error) {
	var b buildOptions
	for _, o := range opts {
		o(&b)
	}
	if log == nil {
		log = slog.Default()
	}
	dir := cfg.DataDir()
	if dir == "" {
		return nil, errors.New("data_dir: no data directory (set data_dir, XDG_DATA_HOME or HOME)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	// Containers of publishes a crash interrupted.
	if stale, _ := filepath.Glob(filepath.Join(dir, ".publish-*.cpeft")); len(stale) > 0 {
		for _, f := range stale {
			os.Remove(f)
		}
	}
	n := &Node{
		cfg: cfg, log: slogutil.With(log, "node"), life: newLifetime(), transfers: newTransfers(), slots: make(chan struct{}, 3),
		prefetchQ: newPrefetchQueue(), listedPublishers: map[peer.ID]bool{}, lines: newLineState(dir),
	}
	for _, s := range cfg.Trust.Publishers {
		if p, err := peer.Decode(s); err == nil {
			n.listedPublishers[p] = true
		}
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if n.store, err = store.Open(filepath.Join(dir, StoreDir), store.Options{
		Quota: int64(cfg.Store.Quota), MaxExpertSize: int64(cfg.Store.MaxExpertSize), Logger: slogutil.With(log, "store"),
	}); err != nil {
		return nil, lockedErr(dir, err)
	}
	if !b.noAPI { // before the host, so that a port in use is said before anything starts
		if n.apiLn, err = net.Listen("tcp", cfg.API.Listen); err != nil {
			return nil, apiListenErr(cfg.API.Listen, err)
		}
	}
	if n.key, err = p2p.LoadIdentity(filepath.Join(dir, IdentityFile)); err != nil {
		return nil, err
	}
	hopts, err := hostOptions(cfg, n.key, slogutil.With(log, "p2p"))
	if err != nil {
		return nil, err
	}
	hopts.Extra = b.host
	hopts.ListenAddrs = uniqueAddrs(hopts.ListenAddrs)
	if err := checkListenFree(hopts.ListenAddrs); err != nil {
		return nil, err
	}
	if n.p2p, err = p2p.NewHost(ctx, hopts); err != nil {
		return nil, err
	}
	if cfg.Trust.Everyone() {
		n.log.Warn(`trust.publishers is "*": experts from every publisher of the swarm are fetched for want rules and handed to the inference server`)
	}
	// The pubsub runs until its context ends: Close ends it, not New's ctx
	// (which, as for the host, bounds construction only).
	psCtx, stopPS := context.WithCancel(context.Background())
	n.stopPS = stopPS
	ps, err := gossip.NewPubSub(psCtx, n.p2p.Host, b.pubsub...)
	if err != nil {
		return nil, err
	}
	// The want rules first: the view's Keep reads them.
	if n.handoff, n.want, err = newHandoff(n, slogutil.With(log, "handoff")); err != nil {
		return nil, err
	}
	g := cfg.Gossip
	if n.gossip, err = gossip.New(n.p2p.Host, ps, n.catalog, gossip.Options{
		TTL: g.TTL, Reannounce: g.Reannounce, MaxPerSecond: g.MaxPerSecond, Logger: slogutil.With(log, "gossip"),
		MaxExperts: g.MaxExperts, MaxViewBytes: int64(g.MaxViewMemory), MaxPerProvider: g.MaxPerProvider,
		MaxCatalog: g.MaxCatalog, CatalogEntryLimit: gossip.RateLimit{Rate: g.CatalogRate, Burst: g.MaxCatalog},
		Keep: n.keepExpert, TrustedPublishers: n.trustedPeers(),
	}); err != nil {
		return nil, err
	}
	n.noteStoredLines()
	n.metrics = metrics.New(n.snapshot)
	maxSize := uint64(cfg.Store.MaxExpertSize)
	n.provider = fetch.NewProvider(n.p2p.Host, n.store, fetch.ProviderOptions{
		MaxSize: maxSize, StreamsPerPeer: cfg.Fetch.StreamsPerPeer, MaxStreams: cfg.Fetch.MaxStreams,
		PeerRate: int64(cfg.Fetch.ServeRate), Logger: slogutil.With(log, "fetch"),
		Served: func(_ peer.ID, b int) { n.metrics.BytesSent(b) },
		Busy:   n.metrics.FetchBusy,
	})
	n.fetcher = fetch.NewFetcher(n.p2p.Host, n.store, fetch.Options{
		MaxSize: maxSize, MaxProviders: cfg.Fetch.MaxProviders, IdleTimeout: cfg.Fetch.IdleTimeout,
		MinRate: float64(cfg.Fetch.MinRate), Logger: slogutil.With(log, "fetch"),
		Received: func(_ peer.ID, b int) { n.metrics.BytesReceived(b) },
		Rejected: func(peer.ID) { n.metrics.BlockRejected() },
		Stored:   n.provider.Stored, // its watchers learn each leaf as it is held
		Provider: n.provider,        // it serves leaves on as they arrive
		// A provider that failed (often one that went away) is dropped from
		// the view for this expert until it announces again, so later
		// fetches do not wait on it.
		Failed: func(c cid.Cid, p peer.ID, _ error) { n.gossip.View().DropProvider(c, p) },
	})
	if b.noAPI {
		return n, nil
	}
	n.api = api.NewServer(n, cfg.API.Token, slogutil.With(log, "api"), api.WithMetrics(n.metrics.Handler()),
		api.WithAccess(api.Access{Hosts: cfg.API.AllowedHosts, Origins: cfg.API.AllowedOrigins}))
	return n, nil
}

// APIAddr is the address the API listens on ("" without the API).
func (n *Node) APIAddr() string {
	if n.apiLn == nil {
		return ""
	}
	return n.apiLn.Addr().String()
}

// Serve runs the node's services until ctx ends or one of them fails, then
// stops them all and waits for them and for the background work they and
// the API started (see lifetime). It may be called once; Close follows it.
func (n *Node) Serve(parent context.Context) error {
	defer n.life.end(errStopped)
	defer context.AfterFunc(parent, func() { n.life.cancel(context.Cause(parent)) })()
	g, ctx := errgroup.WithContext(n.life.ctx)
	for _, s := range n.services() {
		g.Go(func() error {
			if err := s.serve(ctx); err != nil && ctx.Err() == nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			return nil
		})
	}
	n.logStarted()
	stop := context.AfterFunc(ctx, func() { n.log.Info("shutting down", "reason", context.Cause(ctx)) })
	defer stop()
	err := g.Wait()
	if err != nil {
		n.log.Error("stopped", slogutil.Err(err))
	}
	return err
}

// service is a long-running part of the node.
type service struct {
	name  string
	serve func(context.Context) error
}

// services are the node's services in the order Serve starts them, each in
// a goroutine of its own. They stop together: when Serve's context ends or
// one fails, all their contexts end, and Serve waits for every one, then
// for the background work (fetches, announcements, hand-offs). Close then
// releases the pubsub, the host and the store, in that order.
func (n *Node) services() []service {
	s := []service{
		{"gossip", n.gossip.Serve},           // announcements, the view, catalog exchanges
		{"fetch provider", n.provider.Serve}, // serves stored experts to peers
		{"handoff", n.handoff.Serve},         // vLLM's load/unload queue, old versions' janitor
		{"adapters", n.serveAdapters},        // once: the adapters dir in line with the store
		{"prefetch", n.servePrefetch},        // fetches the experts inference.want follows
		{"dht", n.serveDHT},                  // bootstrap, then reprovide every reprovideInterval
	}
	if n.api != nil {
		s = append(s, service{"api", func(ctx context.Context) error { return n.api.Serve(ctx, n.apiLn) }})
	}
	return s
}

// logStarted says the node runs, and where.
func (n *Node) logStarted() {
	n.log.Info("expertd running", slogutil.Self(n.p2p.ID()), "addrs", n.p2p.Addrs(), "api", n.APIAddr(), "data_dir", n.cfg.DataDir())
	if n.api != nil {
		url := "http://" + n.APIAddr() + "/"
		if n.cfg.API.Token != "" {
			url += "?token=<api.token>"
		}
		n.log.Info("status page", "url", url)
	}
}

// Close releases what New opened, once the background work ended.
func (n *Node) Close() error {
	n.life.end(errStopped)
	var errs []error
	if n.gossip != nil {
		errs = append(errs, n.gossip.Close())
	}
	if n.stopPS != nil {
		n.stopPS()
	}
	if n.p2p != nil {
		errs = append(errs, n.p2p.Close())
	}
	if n.apiLn != nil {
		_ = n.apiLn.Close()
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	return errors.Join(errs...)
}
