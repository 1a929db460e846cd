package gossip

import (
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Defaults of Options.
const (
	DefaultReannounce      = 5 * time.Minute
	DefaultMaxPerSecond    = 10
	DefaultExchangeTimeout = 15 * time.Second
	// DefaultMaxCatalog is DefaultMaxPerProvider: a receiver records no
	// more of one provider's experts anyway.
	DefaultMaxCatalog = DefaultMaxPerProvider
	DefaultMaxServing = 16
	// DefaultAnnounceRate and DefaultAnnounceBurst are the defaults of
	// Options.ProviderLimit and PublisherLimit: a burst of 20 new
	// announcements, then 2 a second, about 3,600 experts in a TTL.
	DefaultAnnounceRate  = 2
	DefaultAnnounceBurst = 20
	// DefaultForwarderRate and DefaultForwarderBurst are the defaults of
	// Options.ForwarderLimit: 10 a second, as a peer forwards for many
	// (36,000 pairs in an hour, learnt from one peer alone), after a burst
	// of 50, a batch of two publishers or more.
	DefaultForwarderRate  = 10
	DefaultForwarderBurst = 50
	// DefaultRateLimitPeers bounds the token buckets kept, for providers
	// and for publishers each.
	DefaultRateLimitPeers = 10_000
	// DefaultRefreshInterval is half of DefaultReannounce: a peer
	// re-announcing on the default period refreshes its experts for free.
	DefaultRefreshInterval = DefaultReannounce / 2
	// DefaultCatalogRate and DefaultCatalogBurst are the defaults of
	// Options.CatalogLimit: a peer pulls once a connection (that one is
	// free), so 3 more pulls in a row, then one every 10 s.
	DefaultCatalogRate  = 0.1
	DefaultCatalogBurst = 3
	// DefaultCatalogEntryRate is the default Rate of
	// Options.CatalogEntryLimit: after a first catalog, a peer's catalogs
	// bring at most 10 experts new to this node a second.
	DefaultCatalogEntryRate = 10
)

// floodStrikes bounds a peer's own announcements over its ProviderLimit
// that are ignored: past this burst, refilled at this rate, they are
// rejected, which makes pubsub's peer scoring stop listening to it. An
// honest publisher announcing a batch of a few hundred experts at once
// stays within it.
var floodStrikes = RateLimit{Rate: 10, Burst: 1000}

// Options tunes a Service. The zero value means every default.
type Options struct {
	// TTL: providers not seen for this long are forgotten, and older
	// announcements ignored (default DefaultTTL).
	TTL time.Duration
	// Reannounce is the period of catalog re-announcements, jittered by
	// ±10% (default DefaultReannounce; negative: never).
	Reannounce time.Duration
	// MaxPerSecond bounds the rate of re-announcement messages (default
	// DefaultMaxPerSecond). Announce is not rate-limited.
	MaxPerSecond int
	// ExchangeTimeout bounds one catalog exchange (default
	// DefaultExchangeTimeout).
	ExchangeTimeout time.Duration
	// MaxCatalog bounds the entries of a catalog, sent or received
	// (default DefaultMaxCatalog): a longer one ends the pull with
	// ErrCatalog.
	MaxCatalog int
	// CatalogEntryLimit rate-limits, per peer, the entries of its
	// catalogs that are new to this node: each spends a token, and those
	// over the limit are skipped, unread, and counted in
	// Stats.CatalogEntriesLimited (default Rate DefaultCatalogEntryRate,
	// Burst MaxCatalog, so that a peer's first catalog passes whole; a
	// negative Rate: no limit). A peer reconnecting in a loop to be pulled
	// again brings no more than that.
	CatalogEntryLimit RateLimit
	// MaxServing bounds the catalog streams served at once; more are reset
	// (the puller tries again later). Default DefaultMaxServing.
	MaxServing int
	// MaxExperts, MaxViewBytes and MaxPerProvider bound the view (see
	// ViewOptions; defaults DefaultMaxExperts, DefaultMaxViewBytes and
	// DefaultMaxPerProvider).
	MaxExperts     int
	MaxViewBytes   int64
	MaxPerProvider int
	// Keep names the experts the view never evicts (ViewOptions.Keep).
	Keep func(Entry) bool
	// ProviderLimit and PublisherLimit rate-limit the announcements
	// accepted from the topic, per provider and per publisher (defaults
	// DefaultAnnounceRate and DefaultAnnounceBurst; a negative Rate: no
	// limit). An
	// announcement over either limit is ignored, neither forwarded nor
	// added to the view, and counted in Stats.RateLimited. Re-announcing
	// an expert this node already knows from that provider (from the
	// topic or its catalog) spends no token, if its last re-announcement
	// was accepted at least RefreshInterval ago; a publisher's limit
	// counts only the announcements it vouches for (a publication it
	// signed, or its own as provider) of experts new to the view, not
	// each provider of one.
	ProviderLimit, PublisherLimit RateLimit
	// ForwarderLimit rate-limits the announcements of experts new to this
	// node that a peer forwards on behalf of other providers (see admit;
	// default DefaultForwarderRate and DefaultForwarderBurst; a negative
	// Rate: no limit).
	ForwarderLimit RateLimit
	// RateLimitPeers bounds the buckets of each limit, the least recently
	// used forgotten first (default DefaultRateLimitPeers).
	RateLimitPeers int
	// RefreshInterval: see ProviderLimit (default DefaultRefreshInterval;
	// negative: every announcement spends a token).
	RefreshInterval time.Duration
	// CatalogLimit rate-limits the catalogs served to each peer beyond the
	// first on each connection (defaults DefaultCatalogRate and
	// DefaultCatalogBurst; a negative Rate: no limit): a catalog can be
	// thousands of entries, and a peer asking for it in a loop would
	// otherwise have them all sent each time. A stream over the limit is
	// reset and counted in Stats.CatalogRateLimited.
	CatalogLimit RateLimit
	// TrustedPublishers (trust.publishers): in the view, a publication by
	// one of them replaces a publication of the same expert by anyone
	// else, and is never replaced by one (see View.Add). Which experts are
	// trusted is Trusted's to say; this only keeps another publisher's
	// signature from hiding a trusted one.
	TrustedPublishers []peer.ID
	Logger            *slog.Logger
}

func (o *Options) defaults() {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Reannounce == 0 {
		o.Reannounce = DefaultReannounce
	}
	if o.MaxPerSecond <= 0 {
		o.MaxPerSecond = DefaultMaxPerSecond
	}
	if o.ExchangeTimeout <= 0 {
		o.ExchangeTimeout = DefaultExchangeTimeout
	}
	if o.MaxCatalog <= 0 {
		o.MaxCatalog = DefaultMaxCatalog
	}
	if o.MaxServing <= 0 {
		o.MaxServing = DefaultMaxServing
	}
	if o.MaxExperts <= 0 {
		o.MaxExperts = DefaultMaxExperts
	}
	if o.MaxViewBytes <= 0 {
		o.MaxViewBytes = DefaultMaxViewBytes
	}
	if o.MaxPerProvider <= 0 {
		o.MaxPerProvider = DefaultMaxPerProvider
	}
	if o.CatalogEntryLimit.Rate == 0 {
		o.CatalogEntryLimit.Rate = DefaultCatalogEntryRate
	}
	if o.CatalogEntryLimit.Burst <= 0 {
		o.CatalogEntryLimit.Burst = o.MaxCatalog
	}
	o.ProviderLimit = o.ProviderLimit.orDefault()
	o.PublisherLimit = o.PublisherLimit.orDefault()
	if o.ForwarderLimit.Rate == 0 {
		o.ForwarderLimit.Rate = DefaultForwarderRate
	}
	if o.ForwarderLimit.Burst <= 0 {
		o.ForwarderLimit.Burst = DefaultForwarderBurst
	}
	if o.RateLimitPeers <= 0 {
		o.RateLimitPeers = DefaultRateLimitPeers
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	if o.CatalogLimit.Rate == 0 {
		o.CatalogLimit.Rate = DefaultCatalogRate
	}
	if o.CatalogLimit.Burst <= 0 {
		o.CatalogLimit.Burst = DefaultCatalogBurst
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}
