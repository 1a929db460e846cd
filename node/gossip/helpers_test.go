package gossip

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/expert"
	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
	gproto "google.golang.org/protobuf/proto"
)

// testCID returns a distinct valid expert CID for each i.
func testCID(i int) cid.Cid {
	h, err := mh.Sum(fmt.Appendf(nil, "expert %d", i), mh.SHA2_256, -1)
	if err != nil {
		panic(err) // cannot happen for sha2-256
	}
	return cid.NewCidV1(cid.DagProtobuf, h)
}

// testAnn returns a valid announcement of expert i by provider p, now.
func testAnn(i int, p peer.ID) Announcement {
	return Announcement{
		CID: testCID(i),
		Metadata: expert.Metadata{
			Name:          fmt.Sprintf("expert-%d", i),
			PeftType:      "lora",
			BaseModel:     "meta-llama/Llama-3.1-8B",
			Rank:          16,
			TargetModules: []string{"q_proj", "v_proj"},
			Params:        1 << 20,
			Density:       0.1,
			Size:          123456,
		},
		Publisher: p,
		Provider:  p,
		Time:      time.UnixMilli(time.Now().UnixMilli()),
	}
}

// rawEncode encodes a without checking it.
func rawEncode(t testing.TB, a Announcement) []byte {
	t.Helper()
	data, err := gproto.Marshal(toWire(a))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func testLogger() *slog.Logger {
	if os.Getenv("GOSSIP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newHost returns a real libp2p host on 127.0.0.1, closed at cleanup.
func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// newPubSub returns NewPubSub on h, stopped at cleanup.
func newPubSub(t *testing.T, h host.Host, opts ...pubsub.Option) *pubsub.PubSub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := NewPubSub(ctx, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// catalogList is a mutable catalog.
type catalogList struct {
	mu sync.Mutex
	as []Announcement
}

func (c *catalogList) add(a ...Announcement) {
	c.mu.Lock()
	c.as = append(c.as, a...)
	c.mu.Unlock()
}

func (c *catalogList) get() []Announcement {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.as)
}

type node struct {
	h    host.Host
	ps   *pubsub.PubSub
	s    *Service
	cat  *catalogList
	mesh *meshTracer
}

// newNode starts a Service on a fresh host; it is stopped at cleanup, and
// the test fails if Serve returned an error.
func newNode(t *testing.T, o Options) *node {
	t.Helper()
	h := newHost(t)
	mesh := newMeshTracer()
	ps := newPubSub(t, h, pubsub.WithRawTracer(mesh))
	if o.Logger == nil {
		o.Logger = testLogger()
	}
	n := &node{h: h, ps: ps, cat: &catalogList{}, mesh: mesh}
	s, err := New(h, ps, n.cat.get, o)
	if err != nil {
		t.Fatal(err)
	}
	n.s = s
	testutil.Serve(t, s.Serve)
	return n
}

func connect(t *testing.T, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// reconnect closes a's connections to b, waits until b has noticed (else
// the new connection would meet b's old one still open: b would see no
// new connection, and start no catalog pull or rate limit anew), and
// connects them again.
func reconnect(t *testing.T, a, b host.Host) {
	t.Helper()
	if err := a.Network().ClosePeer(b.ID()); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the disconnect noticed", func() bool {
		return b.Network().Connectedness(a.ID()) != network.Connected
	})
	connect(t, a, b)
}

// waitTopicPeers waits until ps knows each of peers as subscribed to Topic.
func waitTopicPeers(t *testing.T, ps *pubsub.PubSub, peers ...peer.ID) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "topic peers known", func() bool {
		known := ps.ListPeers(Topic)
		for _, p := range peers {
			if !slices.Contains(known, p) {
				return false
			}
		}
		return true
	})
}

func hasProvider(v *View, c cid.Cid, p peer.ID) bool {
	return slices.Contains(v.Providers(c), p)
}

func mustMarshal(t testing.TB, m gproto.Message) []byte {
	t.Helper()
	data, err := gproto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
