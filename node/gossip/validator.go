package gossip

import (
	"context"
	"errors"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// validate is the topic validator. A message is accepted when it decodes
// to a valid announcement whose provider signed it, dated within the TTL
// and MaxClockSkew, whose envelope, if it has one, is a publication of its
// metadata signed by its publisher, and newer than the last one accepted
// for the same expert and provider. Stale and replayed messages are
// ignored (not forwarded, the sender not penalized); anything else is
// rejected (the sender is penalized). On accept, msg.ValidatorData holds
// the checked announcement.
func (s *Service) validate(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	local := src == s.host.ID()
	a, err := decodeVerify(msg.Data, msg.GetFrom(), time.Now(), s.opts.TTL)
	if err == nil && !local {
		err = s.markSeen(a.Announcement)
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
	case errors.Is(err, ErrStale), errors.Is(err, ErrDuplicate):
		return pubsub.ValidationIgnore
	default:
		return pubsub.ValidationReject
	}
}

// markSeen records a as the latest topic announcement of a.CID by
// a.Provider, or returns ErrDuplicate if it is not newer than the last one.
// Pubsub drops a repeated message only while it remembers its ID (two
// minutes by default); this keeps a replayed signed message from
// refreshing a provider for the whole TTL.
func (s *Service) markSeen(a Announcement) error {
	k := replayKey{a.CID, a.Provider}
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.replay[k]; ok && !a.Time.After(last) {
		return ErrDuplicate
	}
	if len(s.replay) < 4*s.opts.MaxExperts { // else degrade to pubsub's own dedup
		s.replay[k] = a.Time
	}
	return nil
}
