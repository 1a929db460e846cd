// Package fetchtest holds what the fetch protocol's tests and benchmarks
// share: a verifying in-memory block store, UnixFS files of random bytes,
// and the plain HTTP server they are compared with.
package fetchtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/gostream"
	"github.com/libp2p/go-libp2p/x/simlibp2p"
	"github.com/marcopolo/simnet"

	"github.com/expertd/expertd/node/store"
	"github.com/expertd/expertd/node/unixfs"
)

// Mem is a block store in memory that verifies every block put, as
// node/store does, and counts the puts.
type Mem struct {
	mu   sync.Mutex
	m    map[cid.Cid][]byte
	puts map[cid.Cid]int
}

// NewMem returns an empty store.
func NewMem() *Mem { return &Mem{m: map[cid.Cid][]byte{}, puts: map[cid.Cid]int{}} }

// PutBlock stores data under c if it is c's block.
func (b *Mem) PutBlock(c cid.Cid, data []byte) error {
	if len(data) > store.MaxBlockSize {
		return store.ErrTooLarge
	}
	if err := unixfs.VerifyBlock(c, data); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[c] = append([]byte(nil), data...)
	b.puts[c]++
	return nil
}

// GetBlock returns a copy of c's block.
func (b *Mem) GetBlock(c cid.Cid) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.m[c]
	if !ok {
		return nil, store.ErrNotFound
	}
	return append([]byte(nil), d...), nil
}

// HasBlock reports whether c's block is held.
func (b *Mem) HasBlock(c cid.Cid) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.m[c]
	return ok, nil
}

// Puts returns how many times each block was put.
func (b *Mem) Puts() map[cid.Cid]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[cid.Cid]int, len(b.puts))
	for c, n := range b.puts {
		out[c] = n
	}
	return out
}

// AddFile lays data out as a UnixFS file in b and returns its layout.
func AddFile(tb testing.TB, b interface{ PutBlock(cid.Cid, []byte) error }, data []byte) *unixfs.Layout {
	tb.Helper()
	l, err := unixfs.Build(bytes.NewReader(data))
	if err != nil {
		tb.Fatal(err)
	}
	for _, n := range l.Nodes {
		if err := b.PutBlock(n.Cid, n.Data); err != nil {
			tb.Fatal(err)
		}
	}
	for _, leaf := range l.Leaves {
		if err := b.PutBlock(leaf.Cid, data[leaf.Offset:leaf.Offset+leaf.Size]); err != nil {
			tb.Fatal(err)
		}
	}
	return l
}

// ReadFile reassembles the file l from b's leaves.
func ReadFile(b interface{ GetBlock(cid.Cid) ([]byte, error) }, l *unixfs.Layout) ([]byte, error) {
	var out []byte
	for i, leaf := range l.Leaves {
		d, err := b.GetBlock(leaf.Cid)
		if err != nil {
			return nil, fmt.Errorf("leaf %d: %w", i, err)
		}
		out = append(out, d...)
	}
	return out, nil
}

// ServeHTTP serves body at every path over HTTP/1.1 on ln until the test
// ends: the plain HTTP baseline of the fetch benchmarks.
func ServeHTTP(tb testing.TB, ln net.Listener, body []byte) {
	srv := &http.Server{Handler: BodyHandler(body), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
}

// BodyHandler answers every request with body.
func BodyHandler(body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = w.Write(body)
	})
}

// HTTPProtocol carries the HTTP/1.1 baseline over libp2p streams, so that
// HTTP and a fetch share the connection, its windows and the link.
const HTTPProtocol protocol.ID = "/expertd/bench-http/1.1"

// ServeHTTPOn serves body at every path over HTTP/1.1 on h's streams until
// the test ends.
func ServeHTTPOn(tb testing.TB, h host.Host, body []byte) {
	tb.Helper()
	ln, err := gostream.Listen(h, HTTPProtocol)
	if err != nil {
		tb.Fatal(err)
	}
	ServeHTTP(tb, ln, body)
}

// HTTPGetFrom downloads what p serves (ServeHTTPOn) over a new stream: no
// keep-alive, so that like a fetch every request opens its own stream.
func HTTPGetFrom(ctx context.Context, h host.Host, p peer.ID) ([]byte, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return gostream.Dial(ctx, h, p, HTTPProtocol)
		},
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.String()+"/expert", nil)
	if err != nil {
		return nil, fmt.Errorf("http request: %w", err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("http get: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("http get: %s", resp.Status)
	}
	var out bytes.Buffer
	out.Grow(int(max(resp.ContentLength, 0)))
	if _, err := out.ReadFrom(resp.Body); err != nil {
		return nil, fmt.Errorf("http body: %w", err)
	}
	return out.Bytes(), nil
}

// SimHosts starts n libp2p hosts (QUIC) on a new go-libp2p simnet network:
// each node has its own uplink and downlink of bitsPerSecond (a token
// bucket of burst bytes; 0 is simnet's one MTU) and every packet is
// delayed rtt/2. Hosts and network close when the test ends.
func SimHosts(tb testing.TB, n int, rtt time.Duration, bitsPerSecond, burst int) []host.Host {
	tb.Helper()
	settings := simnet.NodeBiDiLinkSettings{
		Uplink:   simnet.LinkSettings{BitsPerSecond: bitsPerSecond, MTU: burst},
		Downlink: simnet.LinkSettings{BitsPerSecond: bitsPerSecond, MTU: burst},
	}
	nw, meta, err := simlibp2p.SimpleLibp2pNetwork(
		[]simlibp2p.NodeLinkSettingsAndCount{{LinkSettings: settings, Count: n}},
		simnet.StaticLatency(rtt/2), // added once per direction
		simlibp2p.NetworkSettings{},
	)
	if err != nil {
		tb.Fatal(err)
	}
	nw.Start()
	tb.Cleanup(nw.Close) // cleanups run last first: the hosts close before it
	for _, h := range meta.Nodes {
		tb.Cleanup(func() { h.Close() })
	}
	return meta.Nodes
}

// Disconnect closes a's connections to b and waits, up to 2 s, until b has
// noticed too, so that the next transfer between them starts on a new
// connection and nothing lands on the old one.
func Disconnect(tb testing.TB, a, b host.Host) {
	tb.Helper()
	if err := a.Network().ClosePeer(b.ID()); err != nil {
		tb.Fatal(err)
	}
	for i := 0; len(b.Network().ConnsToPeer(a.ID())) > 0; i++ {
		if i == 400 {
			tb.Fatalf("%s still connected 2 s after %s closed", b.ID(), a.ID())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
