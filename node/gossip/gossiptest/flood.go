// Package gossiptest attacks a node's gossip as a hostile swarm would, for
// tests and benchmarks: identities on real libp2p hosts that serve
// catalogs of valid-looking announcements and flood the announce topic.
package gossiptest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mh "github.com/multiformats/go-multihash"
	gproto "google.golang.org/protobuf/proto"

	"github.com/expertd/expertd/node/expert"
	"github.com/expertd/expertd/node/gossip"
	pb "github.com/expertd/expertd/proto"
)

// FloodOptions describes an attack.
type FloodOptions struct {
	// Identities is the number of attacking hosts, each a fresh identity.
	Identities int
	// Entries is the size of each identity's catalog: announcements of
	// experts it claims to hold, each signed by itself as publisher.
	Entries int
	// Large makes every entry about as large as an announcement may be
	// (some 15 KB on the wire) instead of some 600 bytes.
	Large bool
	// Name names entry j of identity i (default "flood-<i>-<j>"), to match
	// a victim's want rules, say.
	Name func(i, j int) string
	// BaseModel of every entry (default "meta-llama/Llama-3.1-8B").
	BaseModel string
	// Topic: each identity also floods the announce topic with
	// announcements of new experts, as fast as its pubsub sends them.
	Topic bool
	// TopicRate bounds each identity's topic flood, in messages per
	// second (0: as fast as its pubsub sends them). A test that runs the
	// attack in the victim's process bounds it, or the attackers' signing
	// takes the CPU a remote attacker's would not.
	TopicRate int
	// FreshTopicIDs: the topic flood signs each message with a fresh
	// identity, provider and publisher of the expert it announces, so no
	// per-peer limit of the victim's sees two messages of one.
	FreshTopicIDs bool
	// Churn, if positive, makes each identity drop its connection and
	// connect again this often, to have its catalog pulled again.
	Churn time.Duration
	// Silent lists stream protocols (the fetch protocol, say) that each
	// identity accepts and never answers, holding the stream until the
	// other side gives up.
	Silent []protocol.ID
}

// Flooder is a running attack. Make one with NewFlooder, start it with
// Attack and stop it with Close.
type Flooder struct {
	opts  FloodOptions
	hosts []host.Host
	keys  []crypto.PrivKey
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup

	served     atomic.Uint64 // catalog entries written
	published  atomic.Uint64 // topic messages published
	silenced   atomic.Uint64 // silent streams accepted
	reconnects atomic.Uint64
}

// NewFlooder starts the identities' hosts on 127.0.0.1 with their catalog
// and silent handlers.
func NewFlooder(o FloodOptions) (*Flooder, error) {
	if o.Name == nil {
		o.Name = func(i, j int) string { return fmt.Sprintf("flood-%d-%d", i, j) }
	}
	if o.BaseModel == "" {
		o.BaseModel = "meta-llama/Llama-3.1-8B"
	}
	ctx, stop := context.WithCancel(context.Background())
	f := &Flooder{opts: o, ctx: ctx, stop: stop}
	for i := range o.Identities {
		key, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			f.Close()
			return nil, err
		}
		h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			f.Close()
			return nil, err
		}
		f.hosts, f.keys = append(f.hosts, h), append(f.keys, key)
		h.SetStreamHandler(gossip.CatalogProtocol, func(st network.Stream) { f.serveCatalog(i, st) })
		for _, p := range o.Silent {
			h.SetStreamHandler(p, f.silent)
		}
	}
	return f, nil
}

// IDs returns the identities' peer IDs.
func (f *Flooder) IDs() []peer.ID {
	out := make([]peer.ID, len(f.hosts))
	for i, h := range f.hosts {
		out[i] = h.ID()
	}
	return out
}

// Served, Published and Silenced count the catalog entries written, the
// topic messages published and the silent streams accepted so far.
func (f *Flooder) Served() uint64    { return f.served.Load() }
func (f *Flooder) Published() uint64 { return f.published.Load() }
func (f *Flooder) Silenced() uint64  { return f.silenced.Load() }

// Attack connects every identity to target, which pulls their catalogs,
// and starts the topic flood if asked; it returns once all are connected.
func (f *Flooder) Attack(target peer.AddrInfo) error {
	for i, h := range f.hosts {
		ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
		err := h.Connect(ctx, target)
		cancel()
		if err != nil {
			return fmt.Errorf("gossiptest: identity %d connecting: %w", i, err)
		}
		if f.opts.Churn > 0 {
			f.wg.Go(func() { f.churn(h, target) })
		}
		if f.opts.Topic {
			ps, err := gossip.NewPubSub(f.ctx, h)
			if err != nil {
				return err
			}
			t, err := ps.Join(gossip.Topic)
			if err != nil {
				return err
			}
			f.wg.Go(func() { f.floodTopic(i, t) })
		}
	}
	return nil
}

// Close stops the attack and the hosts.
func (f *Flooder) Close() {
	f.stop()
	for _, h := range f.hosts {
		_ = h.Close()
	}
	f.wg.Wait()
}

// Entry returns identity i's announcement of its expert j as of now.
func (f *Flooder) Entry(i, j int) (*pb.Announcement, error) {
	return f.entry(f.keys[i], f.hosts[i].ID(), i, j)
}

func (f *Flooder) entry(key crypto.PrivKey, id peer.ID, i, j int) (*pb.Announcement, error) {
	h, err := mh.Sum(fmt.Appendf(nil, "flood %s %d", id, j), mh.SHA2_256, -1)
	if err != nil {
		return nil, err
	}
	a := gossip.Announcement{
		CID: cid.NewCidV1(cid.DagProtobuf, h), Metadata: expert.Metadata{
			Name: f.opts.Name(i, j), PeftType: "LORA", BaseModel: f.opts.BaseModel, Rank: 16,
			TargetModules: []string{"q_proj", "v_proj"}, Params: 1 << 20, Density: 0.1,
			Size: 1 << 20,
		},
		Publisher: id, Time: time.Now(),
	}
	if f.opts.Large {
		a.Name += strings.Repeat("n", 200)
		a.BaseModel += strings.Repeat("b", 200)
		a.TargetModules = nil
		for k := range 50 {
			a.TargetModules = append(a.TargetModules, fmt.Sprintf("layers.%03d.%s", k, strings.Repeat("m", 110)))
		}
	}
	env, err := gossip.SignPublication(key, a)
	if err != nil {
		return nil, err
	}
	return &pb.Announcement{
		Cid: a.CID.Bytes(), Name: a.Name, PeftType: a.PeftType, BaseModel: a.BaseModel, Rank: uint32(a.Rank),
		TargetModules: a.TargetModules, Params: uint64(a.Params), Density: a.Density, Size: uint64(a.Size),
		Publisher: []byte(id), Provider: []byte(id), TimeUnixMs: time.Now().UnixMilli(), Envelope: env,
	}, nil
}

// serveCatalog writes identity i's catalog, in frames of some 200 KB.
func (f *Flooder) serveCatalog(i int, st network.Stream) {
	w := bufio.NewWriter(st)
	var (
		cat  pb.Catalog
		buf  []byte
		size int
		err  error
	)
	for j := range f.opts.Entries {
		var m *pb.Announcement
		if m, err = f.Entry(i, j); err != nil {
			break
		}
		cat.Entries = append(cat.Entries, m)
		if size += gproto.Size(m) + 8; size > 200<<10 || j == f.opts.Entries-1 {
			if buf, err = pb.WriteFrame(w, &cat, buf); err != nil {
				break
			}
			f.served.Add(uint64(len(cat.Entries)))
			cat.Entries, size = cat.Entries[:0], 0
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

// floodTopic publishes announcements of identity i's experts past its
// catalog, or of fresh identities', until the attack stops.
func (f *Flooder) floodTopic(i int, t *pubsub.Topic) {
	var tick *time.Ticker
	if f.opts.TopicRate > 0 {
		tick = time.NewTicker(time.Second / time.Duration(f.opts.TopicRate))
		defer tick.Stop()
	}
	for j := f.opts.Entries; f.ctx.Err() == nil; j++ {
		if tick != nil {
			select {
			case <-tick.C:
			case <-f.ctx.Done():
				return
			}
		}
		key, id := f.keys[i], f.hosts[i].ID()
		var opts []pubsub.PubOpt
		if f.opts.FreshTopicIDs {
			sk, pk, err := crypto.GenerateEd25519Key(nil)
			if err != nil {
				return
			}
			if id, err = peer.IDFromPublicKey(pk); err != nil {
				return
			}
			key, opts = sk, []pubsub.PubOpt{pubsub.WithSecretKeyAndPeerId(sk, id)}
		}
		m, err := f.entry(key, id, i, j)
		if err != nil {
			return
		}
		data, err := gproto.Marshal(m)
		if err != nil {
			return
		}
		if err := t.Publish(f.ctx, data, opts...); err != nil {
			if errors.Is(err, context.Canceled) || f.ctx.Err() != nil {
				return
			}
			continue
		}
		f.published.Add(1)
	}
}

// churn reconnects h to target every Churn until the attack stops.
func (f *Flooder) churn(h host.Host, target peer.AddrInfo) {
	t := time.NewTicker(f.opts.Churn)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
		_ = h.Network().ClosePeer(target.ID)
		ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
		_ = h.Connect(ctx, target)
		cancel()
		f.reconnects.Add(1)
	}
}

// Reconnects counts the reconnections Churn made.
func (f *Flooder) Reconnects() uint64 { return f.reconnects.Load() }

// silentHold bounds how long a silent stream is held after the other
// side closed its end: longer than any client waits.
const silentHold = time.Minute

// silent holds a stream open, reading and discarding what comes, and
// answers nothing, until the other side resets it, silentHold after it
// closed its end, or the attack stops.
func (f *Flooder) silent(st network.Stream) {
	f.silenced.Add(1)
	if _, err := io.Copy(io.Discard, st); err == nil {
		t := time.NewTimer(silentHold)
		select {
		case <-t.C:
		case <-f.ctx.Done():
		}
		t.Stop()
	}
	_ = st.Reset()
}
