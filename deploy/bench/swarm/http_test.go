package swarm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/expertd/expertd/node/fetch/fetchtest"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/gostream"
	"github.com/marcopolo/simnet"
)

// httpProtocol carries the HTTP/1.1 baseline over libp2p streams: the
// same simulated links and QUIC as the nodes.
const httpProtocol protocol.ID = "/expertd/bench-http/1.1"

// startHosts starts count plain libp2p hosts on nw with the nodes' links.
func startHosts(t *testing.T, nw *simnet.Simnet, count int) ([]host.Host, []*atomic.Int64) {
	t.Helper()
	var hs []host.Host
	var sent []*atomic.Int64
	for i := range count {
		s := new(atomic.Int64)
		h, err := libp2p.New(
			libp2p.ListenAddrStrings(fmt.Sprintf("/ip4/%s/udp/8000/quic-v1", simnet.IntToPublicIPv4(i))),
			quicSimnet(nw, link(), s),
			libp2p.DisableIdentifyAddressDiscovery(),
			libp2p.ResourceManager(&network.NullResourceManager{}),
		)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		hs, sent = append(hs, h), append(sent, s)
	}
	return hs, sent
}

// serveHTTP serves body at every path over HTTP/1.1 on h's streams.
func serveHTTP(t *testing.T, h host.Host, body []byte) {
	ln, err := gostream.Listen(h, httpProtocol)
	if err != nil {
		t.Fatal(err)
	}
	fetchtest.ServeHTTP(t, ln, body)
}

// httpGet downloads what p serves and checks it is want.
func httpGet(ctx context.Context, h host.Host, p peer.ID, want []byte) error {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return gostream.Dial(ctx, h, p, httpProtocol)
		},
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.String()+"/expert", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("http: got %d bytes, not the %d served", len(got), len(want))
	}
	return nil
}

// httpResult is what one plain HTTP run measured.
type httpResult struct {
	Clients int
	Done    []time.Duration // per client: request to the last byte
	Sent    int64           // server's bytes sent
}

// runHTTP has clients hosts download size bytes at once from one HTTP
// server, every host on the nodes' links, connections open beforehand.
func runHTTP(t *testing.T, size int, clients int) httpResult {
	nw := newNetwork(t)
	hs, sent := startHosts(t, nw, clients+1)
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i*7 + i>>9)
	}
	serveHTTP(t, hs[0], body)
	for _, h := range hs[1:] {
		if err := h.Connect(context.Background(), peer.AddrInfo{ID: hs[0].ID(), Addrs: hs[0].Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	sent0 := sent[0].Load()
	res := httpResult{Clients: clients, Done: make([]time.Duration, clients)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i, h := range hs[1:] {
		wg.Go(func() {
			if err := httpGet(ctx, h, hs[0].ID(), body); err != nil {
				t.Errorf("client %d: %v", i, err)
			}
			res.Done[i] = time.Since(start)
		})
	}
	wg.Wait()
	res.Sent = sent[0].Load() - sent0
	return res
}
