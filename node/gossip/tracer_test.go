package gossip

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// meshTracer records a node's gossipsub mesh on Topic.
type meshTracer struct {
	mu   sync.Mutex
	mesh map[peer.ID]bool
}

var _ pubsub.RawTracer = (*meshTracer)(nil)

func newMeshTracer() *meshTracer { return &meshTracer{mesh: map[peer.ID]bool{}} }

func (m *meshTracer) Graft(p peer.ID, topic string) {
	if topic == Topic {
		m.mu.Lock()
		m.mesh[p] = true
		m.mu.Unlock()
	}
}

func (m *meshTracer) Prune(p peer.ID, topic string) {
	if topic == Topic {
		m.mu.Lock()
		delete(m.mesh, p)
		m.mu.Unlock()
	}
}

func (m *meshTracer) has(peers ...peer.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !slices.ContainsFunc(peers, func(p peer.ID) bool { return !m.mesh[p] })
}

func (m *meshTracer) size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.mesh)
}

// waitMesh waits until n's mesh on Topic holds peers.
func waitMesh(t *testing.T, n *node, peers ...peer.ID) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "mesh formed", func() bool { return n.mesh.has(peers...) })
}

func (*meshTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (*meshTracer) OnClosedOutboundStream(peer.ID)                       {}
func (*meshTracer) Join(string)                                          {}
func (*meshTracer) Leave(string)                                         {}
func (*meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (*meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (*meshTracer) RejectMessage(*pubsub.Message, string)                {}
func (*meshTracer) DuplicateMessage(*pubsub.Message)                     {}
func (*meshTracer) ThrottlePeer(peer.ID)                                 {}
func (*meshTracer) RecvRPC(*pubsub.RPC)                                  {}
func (*meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (*meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (*meshTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (*meshTracer) UndeliverableMessage(*pubsub.Message)                 {}
