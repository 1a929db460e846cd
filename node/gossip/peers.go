package gossip

import "github.com/libp2p/go-libp2p/core/peer"

// TopicPeers returns the peers known to be subscribed to Topic: those an
// announcement published now reaches directly (the pubsub flood-publishes).
func (s *Service) TopicPeers() []peer.ID { return s.topic.ListPeers() }
