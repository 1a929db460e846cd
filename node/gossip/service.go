package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/internal/slogutil"
)

// Topic is the gossipsub topic of announcements.
const Topic = "expertd/announce/1"

// Service announces this node's experts and maintains its View of the
// swarm's. Make one with New, run it with Serve.
type Service struct {
	host    host.Host
	self    peer.ID // host.ID()
	ps      *pubsub.PubSub
	topic   *pubsub.Topic
	catalog func() []Announcement
	opts    Options
	log     *slog.Logger
	view    *View
	pace    *pacer
	stats   counters

	serving atomic.Int32 // catalog streams being served
	started atomic.Bool

	mu         sync.Mutex
	replay     replayLog // what is known of each expert's providers
	lines      lineLog   // the latest version of each line
	providers  *limiter  // ProviderLimit
	publishers *limiter  // PublisherLimit
	catalogs   *limiter  // CatalogLimit
	entries    *limiter  // CatalogEntryLimit
	forwarders *limiter  // ForwarderLimit
	strikes    *limiter  // floodStrikes
	pullTokens *limiter  // pullLimit
	// catalogConn: when the connection a peer was last served a catalog on
	// for free was opened (see catalogAllowed); peers not connected are
	// dropped by maintain.
	catalogConn map[peer.ID]time.Time
	pulling     map[peer.ID]bool

	closeOnce sync.Once
	closeErr  error
}

// New joins Topic on ps, registers the topic validator and the catalog
// stream handler on h. catalog returns the experts this node holds now,
// each with its publication as Envelope if it has one (Provider and Time
// are filled in when they are sent; nil means none); it must be safe for
// concurrent use. ps should come from NewPubSub, or at least flood-publish
// and require signatures (pubsub's defaults do the latter). The Service
// holds the topic until Serve returns or Close.
func New(h host.Host, ps *pubsub.PubSub, catalog func() []Announcement, o Options) (*Service, error) {
	if h == nil || ps == nil {
		return nil, errors.New("gossip: New needs a host and a pubsub")
	}
	s := newService(h.ID(), o)
	s.host, s.ps = h, ps
	if catalog != nil {
		s.catalog = catalog
	}
	if err := ps.RegisterTopicValidator(Topic, s.validate, pubsub.WithValidatorInline(true)); err != nil {
		return nil, fmt.Errorf("gossip: registering the validator: %w", err)
	}
	t, err := ps.Join(Topic)
	if err != nil {
		_ = ps.UnregisterTopicValidator(Topic)
		return nil, fmt.Errorf("gossip: joining %s: %w", Topic, err)
	}
	s.topic = t
	h.SetStreamHandler(CatalogProtocol, s.serveCatalog)
	return s, nil
}

// newService returns the state of a Service of self, with o's defaults
// filled in, not yet bound to a host.
func newService(self peer.ID, o Options) *Service {
	o.defaults()
	return &Service{
		self:    self,
		catalog: func() []Announcement { return nil },
		opts:    o,
		log:     o.Logger, // its component is set by whoever hands it down
		view: NewView(ViewOptions{
			TTL: o.TTL, MaxExperts: o.MaxExperts, MaxBytes: o.MaxViewBytes, MaxPerProvider: o.MaxPerProvider,
			Keep: o.Keep, Prefer: o.TrustedPublishers,
		}),
		pace:        &pacer{interval: time.Second / time.Duration(o.MaxPerSecond)},
		replay:      newReplayLog(2 * o.MaxExperts),
		lines:       newLineLog(o.MaxExperts, preferred(o.TrustedPublishers)),
		providers:   newLimiter(o.ProviderLimit, o.RateLimitPeers),
		publishers:  newLimiter(o.PublisherLimit, o.RateLimitPeers),
		catalogs:    newLimiter(o.CatalogLimit, o.RateLimitPeers),
		entries:     newLimiter(o.CatalogEntryLimit, o.RateLimitPeers),
		forwarders:  newLimiter(o.ForwarderLimit, o.RateLimitPeers),
		strikes:     newLimiter(floodStrikes, o.RateLimitPeers),
		pullTokens:  newLimiter(pullLimit, o.RateLimitPeers),
		catalogConn: map[peer.ID]time.Time{},
		pulling:     map[peer.ID]bool{},
	}
}

// View returns the node's view of the swarm.
func (s *Service) View() *View { return s.view }

// Announce tells the swarm that this node holds a.CID. Provider and Time
// are set to this node and now; Publisher must be set (this node for an
// expert it published, the original publisher for a fetched one).
// Envelope, if set, must be a publication of a's metadata
// (SignPublication; OpenPublication returns the announcement to make of
// one), or the announcement is refused with ErrPublication.
func (s *Service) Announce(ctx context.Context, a Announcement) error {
	return s.publish(ctx, s.stamp(a, time.Now()))
}

// stamp makes a this node's announcement as of now.
func (s *Service) stamp(a Announcement, now time.Time) Announcement {
	a.Provider = s.self
	a.Time = time.UnixMilli(now.UnixMilli())
	return a
}

func (s *Service) publish(ctx context.Context, a Announcement) error {
	data, err := encode(a)
	if err != nil {
		return err
	}
	if _, err := checkPublication(a); err != nil { // the validator would refuse it, less clearly
		return err
	}
	if err := s.topic.Publish(ctx, data); err != nil {
		s.stats.publishErrors.Add(1)
		if errors.Is(err, pubsub.ErrTopicClosed) {
			return ErrClosed
		}
		return fmt.Errorf("gossip: publishing %s: %w", a.CID, err)
	}
	s.stats.published.Add(1)
	return nil
}

// Serve runs the service until ctx is done: it reads announcements into
// the view, re-announces the catalog periodically, pulls the catalog of
// every newly connected peer (and of those connected already) and sweeps
// expired entries. It then leaves the topic and unregisters the handlers,
// as Close does, and returns nil, or an error if it could not start or the
// subscription failed. Serve may be called once.
func (s *Service) Serve(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("gossip: Serve called twice")
	}
	defer func() {
		if err := s.Close(); err != nil { // e.g. the pubsub stopped first
			s.log.Debug("closing", slogutil.Err(err))
		}
	}()
	sub, err := s.topic.Subscribe(pubsub.WithBufferSize(256))
	if err != nil {
		return fmt.Errorf("gossip: subscribing to %s: %w", Topic, err)
	}
	defer sub.Cancel()
	conns, err := s.subscribeConnections()
	if err != nil {
		return err
	}
	defer conns.Close()

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before wg.Wait
	wg.Go(func() { s.pullLoop(ctx, conns) })
	wg.Go(func() { s.reannounceLoop(ctx) })
	wg.Go(func() { s.expireLoop(ctx) })
	return s.readLoop(ctx, sub)
}

// Close leaves the topic and unregisters the validator and the catalog
// handler; Announce fails with ErrClosed afterwards. Serve calls it when
// it returns; call it yourself only if Serve never ran (while Serve runs,
// leaving the topic fails: cancel Serve's context instead).
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.host.RemoveStreamHandler(CatalogProtocol)
		var errs []error
		if err := s.topic.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gossip: leaving %s: %w", Topic, err))
		}
		if err := s.ps.UnregisterTopicValidator(Topic); err != nil {
			errs = append(errs, fmt.Errorf("gossip: unregistering the validator: %w", err))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// readLoop turns accepted topic messages into view entries.
func (s *Service) readLoop(ctx context.Context, sub *pubsub.Subscription) error {
	self := s.host.ID()
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("gossip: reading %s: %w", Topic, err)
		}
		if msg.ReceivedFrom == self {
			continue // our own publication
		}
		var a checked
		if v, ok := msg.ValidatorData.(validated); ok {
			a.Announcement, err = decode(msg.Data)
			a.signed = v.signed
		} else { // the validator always sets it; check again rather than trust that
			a, err = decodeVerify(msg.Data, msg.GetFrom(), time.Now(), s.opts.TTL)
		}
		if err != nil {
			s.log.Warn("undecodable announcement past the validator", slogutil.Peer(msg.ReceivedFrom), slogutil.Err(err))
			continue
		}
		if a.Provider == self {
			continue
		}
		s.view.add(a, msg.ReceivedFrom)
	}
}

// reannounceLoop re-announces the catalog every Reannounce, jittered.
func (s *Service) reannounceLoop(ctx context.Context) {
	if s.opts.Reannounce < 0 {
		return
	}
	t := time.NewTimer(jitter(s.opts.Reannounce))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.reannounce(ctx)
		t.Reset(jitter(s.opts.Reannounce))
	}
}

// reannounce publishes every catalog entry, at most MaxPerSecond a second.
func (s *Service) reannounce(ctx context.Context) {
	entries := s.catalog()
	if len(entries) > s.opts.MaxCatalog {
		s.log.Warn("catalog too large; re-announcing its start only", "experts", len(entries), "limit", s.opts.MaxCatalog)
		entries = entries[:s.opts.MaxCatalog]
	}
	failed := 0
	var lastErr error
	for _, a := range entries {
		if err := s.pace.wait(ctx); err != nil {
			return
		}
		if err := s.publish(ctx, s.stamp(a, time.Now())); err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return
			}
			failed++
			lastErr = err
		}
	}
	if failed > 0 {
		s.log.Warn("re-announcing the catalog", "failed", failed, "of", len(entries), slogutil.Err(lastErr))
	}
}

// expireLoop sweeps expired view entries and replay records, and the
// token buckets full again.
func (s *Service) expireLoop(ctx context.Context) {
	t := time.NewTicker(max(min(s.opts.TTL/4, time.Minute), 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.view.Expire()
		now := time.Now()
		limit := now.Add(-s.opts.TTL)
		s.mu.Lock()
		s.replay.expire(limit)
		s.providers.prune(now)
		s.publishers.prune(now)
		s.catalogs.prune(now)
		s.entries.prune(now)
		s.forwarders.prune(now)
		s.strikes.prune(now)
		s.pullTokens.prune(now)
		for p := range s.catalogConn {
			if s.host.Network().Connectedness(p) != network.Connected {
				delete(s.catalogConn, p)
			}
		}
		s.mu.Unlock()
	}
}

// jitter returns d ±10%.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}
