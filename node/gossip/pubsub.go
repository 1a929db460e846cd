package gossip

import (
	"context"
	"net"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// SeenTTL is how long pubsub remembers a message it validated, to drop
// duplicates unchecked and to score their deliveries: a record of each,
// kept for pubsub's default of two minutes, made a flood of a few thousand
// messages a second cost tens of MB. Duplicates arrive within the seconds
// of gossip's history; an older replay meets the Service's own replay
// records instead (ErrDuplicate).
const SeenTTL = 30 * time.Second

// NewPubSub returns a gossipsub instance on h fit for the announce topic:
// flood publishing on (otherwise a message published before the mesh forms,
// as right after connecting, is silently lost), strict message signing,
// messages remembered for SeenTTL, and peer scoring that penalizes peers
// forwarding rejected announcements (see ScoreParams). opts are applied
// after these, so they may override them. The instance lives until ctx is
// done.
func NewPubSub(ctx context.Context, h host.Host, opts ...pubsub.Option) (*pubsub.PubSub, error) {
	params, thresholds := ScoreParams()
	base := []pubsub.Option{
		pubsub.WithFloodPublish(true),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithSeenMessagesTTL(SeenTTL),
		pubsub.WithPeerScore(params, thresholds),
	}
	return pubsub.NewGossipSub(ctx, h, append(base, opts...)...)
}

// ScoreParams returns the peer scoring NewPubSub uses. The announce topic
// is quiet (a few messages per expert per re-announce period), so mesh
// delivery rates are not scored; what counts is a small reward for time in
// the mesh and first deliveries, and a heavy penalty for invalid messages
// (-100 times their count squared): a peer that sends three is no longer
// gossiped with, four no longer flood-published to, six get it graylisted;
// the count decays over about an hour. More than ten peers from one IP
// address (loopback excepted) are penalized too.
func ScoreParams() (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	topic := &pubsub.TopicScoreParams{
		TopicWeight: 1,

		TimeInMeshWeight:  0.01,
		TimeInMeshQuantum: time.Second,
		TimeInMeshCap:     300, // at most 3

		FirstMessageDeliveriesWeight: 0.5,
		FirstMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:    20, // at most 10

		InvalidMessageDeliveriesWeight: -100, // times the count squared
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
	_, loop4, _ := net.ParseCIDR("127.0.0.0/8")
	_, loop6, _ := net.ParseCIDR("::1/128")
	params := &pubsub.PeerScoreParams{
		Topics:        map[string]*pubsub.TopicScoreParams{Topic: topic},
		TopicScoreCap: 20,

		AppSpecificScore:  func(peer.ID) float64 { return 0 },
		AppSpecificWeight: 1,

		IPColocationFactorWeight:    -10,
		IPColocationFactorThreshold: 10,
		IPColocationFactorWhitelist: []*net.IPNet{loop4, loop6},

		BehaviourPenaltyWeight:    -10,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),

		DecayInterval: pubsub.DefaultDecayInterval,
		DecayToZero:   pubsub.DefaultDecayToZero,
		RetainScore:   10 * time.Minute,
		SeenMsgTTL:    SeenTTL,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:             -500,
		PublishThreshold:            -1000,
		GraylistThreshold:           -2500,
		AcceptPXThreshold:           100, // not reachable by scoring alone: no PX from strangers
		OpportunisticGraftThreshold: 1,
	}
	return params, thresholds
}
