package node

import (
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/gossip"
)

// meshTracer records the peers a node's gossipsub holds in its mesh of the
// announce topic, from pubsub's GRAFT and PRUNE trace events.
type meshTracer struct {
	mu   sync.Mutex
	mesh map[peer.ID]bool
}

var _ pubsub.EventTracer = (*meshTracer)(nil)

func (m *meshTracer) Trace(evt *pb.TraceEvent) {
	var raw []byte
	var in bool
	switch evt.GetType() {
	case pb.TraceEvent_GRAFT:
		if evt.GetGraft().GetTopic() != gossip.Topic {
			return
		}
		raw, in = evt.GetGraft().GetPeerID(), true
	case pb.TraceEvent_PRUNE:
		if evt.GetPrune().GetTopic() != gossip.Topic {
			return
		}
		raw = evt.GetPrune().GetPeerID()
	default:
		return
	}
	p, err := peer.IDFromBytes(raw)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if in {
		m.mesh[p] = true
	} else {
		delete(m.mesh, p)
	}
}

func (m *meshTracer) has(p peer.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mesh[p]
}

// meshes are the tracers of the nodes newNode made.
var meshes sync.Map // *Node -> *meshTracer

// waitMesh waits until every node has a peer on the announcement topic and
// holds every such peer in its gossipsub mesh: from then on, what one
// publishes travels beyond its direct peers (flood publishing covers only
// the first hop; the mesh forms at a heartbeat after peers connect).
func waitMesh(t *testing.T, nodes ...*Node) {
	t.Helper()
	for _, n := range nodes {
		m, ok := meshes.Load(n)
		if !ok {
			t.Fatal("waitMesh: a node newNode did not make")
		}
		testutil.Eventually(t, 10*time.Second, "the gossip mesh", func() bool {
			peers := n.gossip.TopicPeers()
			for _, p := range peers {
				if !m.(*meshTracer).has(p) {
					return false
				}
			}
			return len(peers) > 0
		})
	}
}
