package gossip

import "errors"

// Sentinel errors; returned errors wrap them with details.
var (
	// ErrInvalid: a field of an announcement is missing or malformed.
	ErrInvalid = errors.New("gossip: invalid announcement")
	// ErrTooLarge: an encoded announcement exceeds MaxMessageSize.
	ErrTooLarge = errors.New("gossip: announcement too large")
	// ErrFuture: an announcement is dated more than MaxClockSkew ahead.
	ErrFuture = errors.New("gossip: announcement dated in the future")
	// ErrStale: an announcement is older than the TTL.
	ErrStale = errors.New("gossip: stale announcement")
	// ErrNotProvider: an announcement names a provider other than the
	// peer that signed or sent it.
	ErrNotProvider = errors.New("gossip: announcement not sent by its provider")
	// ErrDuplicate: an announcement is not newer than one already
	// accepted from the same provider for the same expert (a replay).
	ErrDuplicate = errors.New("gossip: duplicate announcement")
	// ErrRateLimited: an announcement exceeds the rate limit of its
	// provider or of its publisher (Options.ProviderLimit, PublisherLimit).
	ErrRateLimited = errors.New("gossip: announcement rate limit exceeded")
	// ErrFlooding: a peer keeps sending its own announcements over its
	// rate limit (see Service.validate).
	ErrFlooding = errors.New("gossip: peer floods announcements")
	// ErrPublication: a publication envelope is malformed, its signature
	// does not verify, its signer is not the publisher it names, or the
	// announcement carrying it differs from it.
	ErrPublication = errors.New("gossip: bad publication")
	// ErrCatalog: a catalog stream was malformed or too large.
	ErrCatalog = errors.New("gossip: bad catalog")
	// ErrClosed: the service was closed.
	ErrClosed = errors.New("gossip: service closed")
)
