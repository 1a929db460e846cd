package sweep

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/fetch"
	"github.com/expertd/expertd/node/fetch/fetchtest"
	"github.com/expertd/expertd/node/unixfs"
)

// scene is a requester connected to one provider of an expert, which it
// serves both with fetch.Provider and over HTTP/1.1.
type scene struct {
	link   link
	data   []byte
	layout *unixfs.Layout
	req    host.Host
	prov   host.Host
}

func newScene(tb testing.TB, l link, size int) *scene {
	tb.Helper()
	s := &scene{link: l, data: testutil.RandomBytes(size, 7)}
	src := fetchtest.NewMem()
	s.layout = fetchtest.AddFile(tb, src, s.data)
	hs := fetchtest.SimHosts(tb, 2, l.RTT, l.BitsPerSecond, 0)
	s.req, s.prov = hs[0], hs[1]
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	go fetch.NewProvider(s.prov, src, fetch.ProviderOptions{}).Serve(ctx)
	waitHandler(tb, s.prov)
	fetchtest.ServeHTTPOn(tb, s.prov, s.data)
	connect(tb, s.req, s.prov, l.RTT)
	return s
}

// waitHandler returns once h serves the fetch protocol.
func waitHandler(tb testing.TB, h host.Host) {
	tb.Helper()
	for range 100 {
		for _, p := range h.Mux().Protocols() {
			if p == fetch.ProtocolID {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	tb.Fatal("fetch handler not registered")
}

// method is one way of moving the expert's bytes to the requester: get
// returns how to read them back, so that checking stays out of the time.
type method func(ctx context.Context, s *scene) (func() []byte, error)

// viaFetch fetches the expert into a fresh empty store, every block
// verified against the root on arrival.
func viaFetch(ctx context.Context, s *scene) (func() []byte, error) {
	dst := fetchtest.NewMem()
	l, err := fetch.NewFetcher(s.req, dst, fetch.Options{}).Fetch(ctx, s.layout.Root, []peer.ID{s.prov.ID()}, nil)
	return func() []byte {
		if l == nil {
			return nil
		}
		b, _ := fetchtest.ReadFile(dst, l) // nil if a leaf is missing
		return b
	}, err
}

// viaHTTP downloads the same bytes with a plain HTTP/1.1 GET.
func viaHTTP(ctx context.Context, s *scene) (func() []byte, error) {
	b, err := fetchtest.HTTPGetFrom(ctx, s.req, s.prov.ID())
	return func() []byte { return b }, err
}

// measure runs m once and returns how long it took, after checking what
// arrived. With fresh, it first replaces the connection; else it runs on
// the one left by the transfer before.
func (s *scene) measure(tb testing.TB, name string, m method, fresh bool) time.Duration {
	tb.Helper()
	if fresh {
		reconnect(tb, s.req, s.prov, s.link.RTT)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	got, err := m(ctx, s)
	d := time.Since(start)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	if !bytes.Equal(got(), s.data) {
		tb.Fatalf("%s: received bytes differ from the expert", name)
	}
	return d
}
