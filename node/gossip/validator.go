package gossip

import (
	"context"
	"errors"
	"fmt"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// validate is the topic validator. A message is accepted when it decodes
// to a valid announcement whose provider signed it, dated within the TTL
// and MaxClockSkew, whose envelope, if it has one, is a publication of its
// metadata signed by its publisher, newer than the last one accepted for
// the same expert and provider, and within the rate limits (see admit).
// Stale, replayed and rate-limited messages are ignored (not forwarded,
// the sender not penalized); anything else is rejected (the sender is
// penalized). On accept, msg.ValidatorData holds the checked announcement.
//
// This node's own messages are checked but neither recorded nor
// rate-limited: its re-announcements are paced by MaxPerSecond instead.
func (s *Service) validate(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	local := src == s.host.ID()
	now := time.Now()
	a, err := decodeVerify(msg.Data, msg.GetFrom(), now, s.opts.TTL)
	if err == nil && !local {
		err = s.admit(a, now)
	}
	res := verdict(err)
	if local {
		return res // Publish reports the error to the caller
	}
	switch res {
	case pubsub.ValidationAccept:
		s.stats.accepted.Add(1)
		msg.ValidatorData = a
	case pubsub.ValidationIgnore:
		s.stats.ignored.Add(1)
		if errors.Is(err, ErrRateLimited) {
			s.stats.rateLimited.Add(1)
		}
		s.log.Debug("ignoring announcement", "from", src, "signer", msg.GetFrom(), "err", err)
	default:
		s.stats.rejected.Add(1)
		s.log.Debug("rejecting announcement", "from", src, "signer", msg.GetFrom(), "err", err)
	}
	return res
}

// verdict maps a check error to a validation result.
func verdict(err error) pubsub.ValidationResult {
	switch {
	case err == nil:
		return pubsub.ValidationAccept
	case errors.Is(err, ErrStale), errors.Is(err, ErrDuplicate), errors.Is(err, ErrRateLimited):
		return pubsub.ValidationIgnore
	default:
		return pubsub.ValidationReject
	}
}

// admit records c, a topic announcement received at now, as the latest of
// its expert by its provider, or refuses it with ErrDuplicate if it is not
// newer than the last one, or with ErrRateLimited if it is over a limit.
//
// Pubsub drops a repeated message only while it remembers its ID (two
// minutes by default); the record keeps a replayed signed message from
// refreshing a provider for the whole TTL.
//
// The rate limits bound what is new to this node, which is what costs it
// memory, notifications (and the fetches they may start) and forwarding,
// rather than the steady refreshes of an honest provider re-announcing a
// large catalog every Reannounce: an announcement of a pair (expert,
// provider) this node knows, from the topic or a catalog pulled from the
// provider, is free if the last one accepted from the topic is at least
// RefreshInterval old. Any other spends a token of the provider's bucket
// and, if the publisher vouches for it (its publication, verified, or its
// own announcement), one of the publisher's: an unsigned claim does not
// count against the publisher it names, or anyone could exhaust an honest
// publisher's budget by naming it. Over either limit, the announcement is
// ignored, not rejected: it is valid, and the peer that forwarded it, whom
// a rejection would penalize, is seldom its provider; different nodes'
// buckets also disagree. An ignored announcement is not recorded, so its
// provider's next one is charged again.
func (s *Service) admit(c checked, now time.Time) error {
	a := c.Announcement
	s.mu.Lock()
	defer s.mu.Unlock()
	r, known := s.replay.get(a.CID, a.Provider)
	if known && !a.Time.After(r.at) {
		return ErrDuplicate
	}
	if _, ok := s.view.admits(a.CID, a.Provider); !ok {
		return fmt.Errorf("%w: provider %s holds %d experts already", ErrRateLimited, a.Provider, s.opts.MaxPerProvider)
	}
	free := known && s.opts.RefreshInterval >= 0 && (r.topic.IsZero() || now.Sub(r.topic) >= s.opts.RefreshInterval)
	if !free {
		pub := vouchingPublisher(c)
		if !s.providers.allows(a.Provider, now) {
			return fmt.Errorf("%w: provider %s", ErrRateLimited, a.Provider)
		}
		if pub != "" && !s.publishers.allows(pub, now) {
			return fmt.Errorf("%w: publisher %s", ErrRateLimited, pub)
		}
		s.providers.take(a.Provider, now)
		if pub != "" {
			s.publishers.take(pub, now)
		}
	}
	s.replay.put(a.CID, a.Provider, pairRecord{at: a.Time, topic: now, known: now})
	return nil
}

// noteCatalog records that c.Provider, from its catalog pulled at now,
// holds c.CID, so that its next re-announcement of it is free.
func (s *Service) noteCatalog(c checked, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, _ := s.replay.get(c.CID, c.Provider)
	r.known = now
	s.replay.put(c.CID, c.Provider, r)
}

// vouchingPublisher returns c's publisher if it vouches for c, or "".
func vouchingPublisher(c checked) peer.ID {
	if !c.signed.IsZero() || c.Publisher == c.Provider {
		return c.Publisher
	}
	return ""
}
