package fetch

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/x/simlibp2p"

	"github.com/expertd/expertd/node/fetch/fetchtest"
	"github.com/expertd/expertd/node/unixfs"
)

// simLink is the access link every node of a simulated network gets.
//
// The model is simnet's (github.com/marcopolo/simnet, behind go-libp2p's
// x/simlibp2p): each node owns one UDP endpoint behind its own uplink and
// downlink of BitsPerSecond each, every direction a token bucket fed by an
// FQ-CoDel queue (5 ms target, 100 ms interval, no length limit). A packet
// leaves through the sender's uplink, crosses a router that delays it by
// RTT/2 and enters through the receiver's downlink. The core is never the
// bottleneck: with several providers, each sends through its own uplink
// and they share the requester's downlink, so the floor of a fetch is the
// same whatever the number of providers.
//
// The token bucket holds one MTU (simnet uses the MTU for nothing else but
// the FQ-CoDel quantum; 1500 bytes by default). That is exact on synctest's
// virtual clock, but in real time a Go timer set for the 120 µs a packet
// takes at 100 Mbit/s fires about 1 ms late (the runtime's netpoller sleeps
// in whole milliseconds) and the tokens of the lost time overflow the
// bucket: such a link carries about 20 Mbit/s, not 100. Burst sets the
// bucket instead; the long-run rate stays exact and the link can run
// ahead of line rate by at most Burst bytes after an idle moment.
type simLink struct {
	RTT           time.Duration
	BitsPerSecond int
	Burst         int // token bucket in bytes; 0 is simnet's 1500
}

// floor is the physical floor of moving size bytes over the link, as the
// issue defines it: the bytes at line rate plus two round trips. With the
// connection already open a request needs one (request out, first byte
// back); the second is slack for the transport to get up to speed.
func (l simLink) floor(size int) time.Duration {
	return time.Duration(float64(size)*8/float64(l.BitsPerSecond)*float64(time.Second)) + 2*l.RTT
}

func (l simLink) String() string {
	return fmt.Sprintf("%v RTT, %d Mbit/s up and down per node", l.RTT, l.BitsPerSecond/simlibp2p.OneMbps)
}

// serveFetch runs a fetch Provider for b on h until the test ends.
func serveFetch(tb testing.TB, h host.Host, b Blocks) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	go NewProvider(h, b, ProviderOptions{}).Serve(ctx)
	waitHandler(tb, h)
}

// reconnect replaces a's connection to b by a new one: the next transfer
// starts on a connection that has carried only the handshake and identify
// (initial congestion window, stream windows not grown).
func reconnect(tb testing.TB, a, b host.Host) {
	tb.Helper()
	fetchtest.Disconnect(tb, a, b)
	connect(tb, a, b)
}

// serveHTTP and httpGet are the plain HTTP baseline over libp2p streams
// on the same connection and link as a fetch.
var (
	serveHTTP = fetchtest.ServeHTTPOn
	httpGet   = fetchtest.HTTPGetFrom
)

// simScene is a requester connected to three providers of one expert over
// a simulated network; the first provider also serves it over HTTP.
type simScene struct {
	link   simLink
	data   []byte
	layout *unixfs.Layout
	req    host.Host
	provs  []host.Host
}

func newSimScene(tb testing.TB, link simLink, size int) *simScene {
	tb.Helper()
	s := &simScene{link: link, data: randomBytes(size, 10)}
	src := newMem()
	s.layout = addFile(tb, src, s.data)
	hosts := fetchtest.SimHosts(tb, 4, link.RTT, link.BitsPerSecond, link.Burst)
	s.req, s.provs = hosts[0], hosts[1:]
	for _, p := range s.provs {
		serveFetch(tb, p, src)
		serveHTTP(tb, p, s.data)
		connect(tb, s.req, p)
	}
	return s
}

func (s *simScene) floor() time.Duration { return s.link.floor(len(s.data)) }

// simCase is one way of getting the expert's bytes to the requester.
type simCase struct {
	name  string
	peers []host.Host // whose connections it uses
	// get moves the bytes and returns how to read them back, so that
	// checking them stays out of the measured time.
	get func(context.Context) (func() []byte, error)
}

func (s *simScene) cases() []simCase {
	fetchFrom := func(peers []host.Host) func(context.Context) (func() []byte, error) {
		return func(ctx context.Context) (func() []byte, error) {
			dst := newMem() // a fresh empty store every time
			l, err := NewFetcher(s.req, dst, Options{}).Fetch(ctx, s.layout.Root, ids(peers...), nil)
			return func() []byte { // nil if a leaf is missing
				var out []byte
				for _, leaf := range l.Leaves {
					d, err := dst.GetBlock(leaf.Cid)
					if err != nil {
						return nil
					}
					out = append(out, d...)
				}
				return out
			}, err
		}
	}
	return []simCase{
		{"providers=1", s.provs[:1], fetchFrom(s.provs[:1])},
		{"providers=3", s.provs, fetchFrom(s.provs)},
		{"http", s.provs[:1], func(ctx context.Context) (func() []byte, error) {
			b, err := httpGet(ctx, s.req, s.provs[0].ID())
			return func() []byte { return b }, err
		}},
	}
}

// measure runs c once, checks what arrived and returns how long c took;
// with fresh, on new connections, else on those left by what ran before.
// A benchmark's timer runs only while c does.
func (s *simScene) measure(tb testing.TB, c simCase, fresh bool) time.Duration {
	tb.Helper()
	timer := func(bool) {}
	if b, ok := tb.(*testing.B); ok {
		timer = func(on bool) {
			if on {
				b.StartTimer()
			} else {
				b.StopTimer()
			}
		}
	}
	timer(false)
	defer timer(true)
	if fresh {
		for _, p := range c.peers {
			reconnect(tb, s.req, p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	timer(true)
	start := time.Now()
	got, err := c.get(ctx)
	d := time.Since(start)
	timer(false)
	if err != nil {
		tb.Fatalf("%s: %v", c.name, err)
	}
	if !bytes.Equal(got(), s.data) {
		tb.Fatalf("%s: received bytes differ from the expert", c.name)
	}
	return d
}

// lanLink is a fast, near link for tests of the fetch's scheduling on
// synctest's virtual clock.
var lanLink = simLink{RTT: 2 * time.Millisecond, BitsPerSecond: 1000 * simlibp2p.OneMbps}

// simProviders starts a requester and one provider per store on a simnet
// network over lanLink, each provider counting what it sends in served
// (nil: not counted). Run it inside synctest.Test: time passes only when
// every goroutine waits, so this machine's load cannot make a provider
// look slower than its store and link make it, and a test of which leaf
// comes from whom cannot be blurred by a neighbour's load.
func simProviders(tb testing.TB, stores []Blocks, served []*atomic.Int64) (host.Host, []host.Host) {
	tb.Helper()
	hosts := fetchtest.SimHosts(tb, len(stores)+1, lanLink.RTT, lanLink.BitsPerSecond, lanLink.Burst)
	req, provs := hosts[0], hosts[1:]
	for i, p := range provs {
		opts := ProviderOptions{}
		if i < len(served) && served[i] != nil {
			n := served[i]
			opts.Served = func(_ peer.ID, b int) { n.Add(int64(b)) }
		}
		ctx, cancel := context.WithCancel(context.Background())
		tb.Cleanup(cancel)
		go NewProvider(p, stores[i], opts).Serve(ctx)
		waitHandler(tb, p)
		connect(tb, req, p)
	}
	return req, provs
}
