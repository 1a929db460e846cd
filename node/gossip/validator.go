package gossip

import (
	"context"
	"errors"
	"fmt"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/internal/slogutil"
)

// validate is the topic validator. A message is accepted when it decodes
// to a valid announcement whose provider signed it, dated within the TTL
// and MaxClockSkew, whose envelope, if it has one, is a publication of its
// metadata signed by its publisher that does not contradict its line of
// versions (see line.go: superseded versions and the like are ignored,
// rejected only from the line's publisher itself), newer than the last one
// accepted for the same expert and provider, and within the limits (see
// admit), which
// are checked once before the envelope's signature, so that a flood over
// them costs little. Stale, replayed and rate-limited messages are ignored
// (not forwarded, the sender not penalized); anything else is rejected
// (the sender is penalized), and so are a peer's own announcements past
// its rate limit once it has sent floodStrikes of them (ErrFlooding).
// On accept, msg.ValidatorData holds what readLoop needs besides
// msg.Data (validated): pubsub keeps accepted messages a while, to
// forward and gossip them, and a decoded copy of each would double that.
//
// This node's own messages are checked but neither recorded nor
// rate-limited: its re-announcements are paced by MaxPerSecond instead.
func (s *Service) validate(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	local := src == s.host.ID()
	now := time.Now()
	a, err := decode(msg.Data)
	if err == nil {
		err = checkSender(a, msg.GetFrom(), now, s.opts.TTL)
	}
	if err == nil && !local {
		err = s.limits(a, "", src, now, false)
	}
	var c checked
	if err == nil {
		c.Announcement = a
		c.signed, err = checkPublication(a)
	}
	if err == nil {
		err = s.checkLine(c, src, now, local) // this node's own are recorded here
	}
	if err == nil && !local {
		if err = s.admit(c, src, now); err == nil {
			s.NoteLine(c.Announcement)
		}
	}
	res := verdict(err)
	if local {
		return res // Publish reports the error to the caller
	}
	switch res {
	case pubsub.ValidationAccept:
		s.stats.accepted.Add(1)
		msg.ValidatorData = validated{signed: c.signed}
	case pubsub.ValidationIgnore:
		s.stats.ignored.Add(1)
		if errors.Is(err, ErrRateLimited) {
			s.stats.rateLimited.Add(1)
		}
		s.log.Debug("ignoring announcement", slogutil.Peer(src), "signer", peer.ID(msg.GetFrom()), slogutil.Err(err))
	default:
		s.stats.rejected.Add(1)
		s.log.Debug("rejecting announcement", slogutil.Peer(src), "signer", peer.ID(msg.GetFrom()), slogutil.Err(err))
	}
	return res
}

// validated is the ValidatorData of an accepted message: when the
// publication it carries was signed (zero if none).
type validated struct {
	signed time.Time
}

// verdict maps a check error to a validation result.
func verdict(err error) pubsub.ValidationResult {
	switch {
	case err == nil:
		return pubsub.ValidationAccept
	case errors.Is(err, ErrFlooding), errors.Is(err, ErrOwnLine):
		return pubsub.ValidationReject
	case errors.Is(err, ErrStale), errors.Is(err, ErrDuplicate), errors.Is(err, ErrRateLimited),
		errors.Is(err, ErrSuperseded), errors.Is(err, ErrVersionConflict), errors.Is(err, ErrNameTaken):
		return pubsub.ValidationIgnore
	default:
		return pubsub.ValidationReject
	}
}

// admit records c, a topic announcement received at now from src (its
// provider, or the peer that forwarded it), as the latest of its expert by
// its provider, or refuses it with ErrDuplicate if it is not newer than
// the last one, or with ErrRateLimited if it is over a limit.
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
// RefreshInterval old. Any other spends a token of the provider's bucket,
// one of the forwarder's if src is not the provider (ForwarderLimit: made
// up identities sent over one connection are still that connection's)
// and, if the publisher vouches for it (its publication, verified, or its
// own announcement) and the expert is new to the view, one of the
// publisher's: an unsigned claim does not count against the publisher it
// names, or anyone could exhaust an honest publisher's budget by naming it. A provider with MaxPerProvider experts
// in the view has its announcements of more refused as over a limit too.
// Over a limit, the announcement is ignored, not rejected: it is valid,
// and the peer that forwarded it, whom a rejection would penalize, is
// seldom its provider; different nodes' buckets also disagree. An ignored
// announcement is not recorded, so its provider's next one is charged
// again.
func (s *Service) admit(c checked, src peer.ID, now time.Time) error {
	return s.limits(c.Announcement, vouchingPublisher(c), src, now, true)
}

// limits applies admit's rules to a from src at now, with pub the
// publisher that vouches for it ("" if none, or none known yet). Without
// commit, it only checks, before a's envelope is verified: then a
// provider's own announcement over its limit spends one of its strikes,
// and is refused with ErrFlooding once it has none left. With commit, it
// spends the tokens and records a.
func (s *Service) limits(a Announcement, pub, src peer.ID, now time.Time, commit bool) error {
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
		forwarded := src != a.Provider
		if !s.providers.allows(a.Provider, now) {
			err := fmt.Errorf("%w: provider %s", ErrRateLimited, a.Provider)
			if !commit && !forwarded {
				if !s.strikes.allows(src, now) {
					return fmt.Errorf("%w: %w", ErrFlooding, err)
				}
				s.strikes.take(src, now)
			}
			return err
		}
		if forwarded && !s.forwarders.allows(src, now) {
			return fmt.Errorf("%w: forwarder %s", ErrRateLimited, src)
		}
		// A publisher is charged for its experts, not for each node that
		// comes to provide one: a swarm fetching a new expert announces
		// it once per node, and those the limit ignored would stay
		// unknown as providers until they re-announce.
		if s.view.Has(a.CID) {
			pub = ""
		}
		if pub != "" && !s.publishers.allows(pub, now) {
			return fmt.Errorf("%w: publisher %s", ErrRateLimited, pub)
		}
		if !commit {
			return nil
		}
		s.providers.take(a.Provider, now)
		if forwarded {
			s.forwarders.take(src, now)
		}
		if pub != "" {
			s.publishers.take(pub, now)
		}
	}
	if commit {
		s.replay.put(a.CID, a.Provider, pairRecord{at: a.Time, topic: now, known: now})
	}
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
