package linkbench

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/fetch"
	"github.com/expertd/expertd/node/fetch/fetchtest"
	"github.com/expertd/expertd/node/unixfs"
)

// newHost starts a libp2p host, closed with the benchmark. opts name its
// one transport (TCP).
func newHost(tb testing.TB, opts ...libp2p.Option) host.Host {
	tb.Helper()
	h, err := libp2p.New(append([]libp2p.Option{libp2p.DisableRelay()}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// serve runs p until the benchmark ends.
func serve(tb testing.TB, p *Proxy) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
}

// proxyTo puts a proxy with the requester's links in front of target.
func (s *scene) proxyTo(tb testing.TB, target string) *Proxy {
	tb.Helper()
	p, err := Listen(Config{Target: target, RTT: s.rtt, Up: s.up, Down: s.down})
	if err != nil {
		tb.Fatal(err)
	}
	serve(tb, p)
	return p
}

// scene is a requester with one access link (s.up, s.down) and, each
// behind its own proxy on that link, three fetch providers of one expert
// and an HTTP server of its bytes. The providers advertise only their
// proxy's address and the requester listens nowhere, so every connection
// between them crosses the link.
type scene struct {
	rtt      time.Duration
	bits     float64
	up, down *Link
	data     []byte
	layout   *unixfs.Layout
	req      host.Host
	provs    []host.Host
	httpURL  string
	httpsURL string
	https    *tls.Config // trusts the HTTPS server's certificate

	connected atomic.Int64 // unix ns of the requester's latest new connection
}

func newScene(tb testing.TB, rtt time.Duration, bits float64, size int, hostOpts ...libp2p.Option) *scene {
	tb.Helper()
	s := &scene{rtt: rtt, bits: bits, up: NewLink(bits), down: NewLink(bits), data: testutil.RandomBytes(size, 3)}
	src := fetchtest.NewMem()
	s.layout = fetchtest.AddFile(tb, src, s.data)
	s.req = newHost(tb, append([]libp2p.Option{libp2p.NoListenAddrs}, hostOpts...)...)
	s.req.Network().Notify(&network.NotifyBundle{ConnectedF: func(network.Network, network.Conn) {
		s.connected.Store(time.Now().UnixNano())
	}})
	for range 3 {
		var advertised atomic.Pointer[[]ma.Multiaddr]
		advertised.Store(&[]ma.Multiaddr{})
		h := newHost(tb, append([]libp2p.Option{
			libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
			libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return *advertised.Load() }),
		}, hostOpts...)...)
		target, err := manet.ToNetAddr(h.Network().ListenAddresses()[0])
		if err != nil {
			tb.Fatal(err)
		}
		p := s.proxyTo(tb, target.String())
		addr, err := manet.FromNetAddr(p.Addr())
		if err != nil {
			tb.Fatal(err)
		}
		advertised.Store(&[]ma.Multiaddr{addr})
		s.req.Peerstore().AddAddrs(h.ID(), []ma.Multiaddr{addr}, peerstore.PermanentAddrTTL)
		ctx, cancel := context.WithCancel(context.Background())
		tb.Cleanup(cancel)
		go fetch.NewProvider(h, src, fetch.ProviderOptions{}).Serve(ctx)
		s.provs = append(s.provs, h)
	}
	s.httpURL = "http://" + s.proxyTo(tb, serveHTTP(tb, s.data)).Addr().String() + "/expert"
	srv := httptest.NewUnstartedServer(fetchtest.BodyHandler(s.data))
	srv.StartTLS() // TLS 1.3, HTTP/1.1, a certificate for 127.0.0.1
	tb.Cleanup(srv.Close)
	s.https = srv.Client().Transport.(*http.Transport).TLSClientConfig
	s.httpsURL = "https://" + s.proxyTo(tb, srv.Listener.Addr().String()).Addr().String() + "/expert"
	return s
}

// serveHTTP serves body at every path on 127.0.0.1 and returns the address.
func serveHTTP(tb testing.TB, body []byte) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	fetchtest.ServeHTTP(tb, ln, body)
	return ln.Addr().String()
}

// floor is the physical floor of the transfer: the bytes at line rate
// plus two round trips (connection set-up, then request and first byte).
func (s *scene) floor() time.Duration {
	return time.Duration(float64(len(s.data))*8/s.bits*float64(time.Second)) + 2*s.rtt
}

// disconnect closes the requester's connections to peers and waits until
// the peers have noticed, so the next fetch dials anew.
func (s *scene) disconnect(tb testing.TB, peers []host.Host) {
	tb.Helper()
	for _, p := range peers {
		fetchtest.Disconnect(tb, s.req, p)
	}
}

// connect makes sure the requester is connected to peers.
func (s *scene) connect(tb testing.TB, peers []host.Host) {
	tb.Helper()
	for _, p := range peers {
		if err := s.req.Connect(context.Background(), peer.AddrInfo{ID: p.ID()}); err != nil {
			tb.Fatal(err)
		}
	}
}

func ids(hs []host.Host) []peer.ID {
	out := make([]peer.ID, len(hs))
	for i, h := range hs {
		out[i] = h.ID()
	}
	return out
}
