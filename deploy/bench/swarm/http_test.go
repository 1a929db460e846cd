package swarm

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/expertd/expertd/node/fetch/fetchtest"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/marcopolo/simnet"
)

// startHosts starts count plain libp2p hosts on nw with sc's nodes' links.
func startHosts(t *testing.T, nw *simnet.Simnet, sc scenario, count int) ([]host.Host, []*uplinkMeter) {
	t.Helper()
	var hs []host.Host
	var sent []*uplinkMeter
	for i := range count {
		s := new(uplinkMeter)
		h, err := libp2p.New(
			libp2p.ListenAddrStrings(fmt.Sprintf("/ip4/%s/udp/8000/quic-v1", addr(i))),
			quicSimnet(nw, sc.link(i), s),
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

// httpResult is what one plain HTTP run measured.
type httpResult struct {
	Clients int
	Done    []time.Duration // per client: request to the last byte
	Sent    int64           // server's bytes sent
}

// runHTTP has clients hosts download size bytes at once from one HTTP
// server, every host on sc's nodes' links, connections open beforehand.
func runHTTP(t *testing.T, sc scenario, size int, clients int) httpResult {
	nw := newNetwork(t, sc)
	hs, sent := startHosts(t, nw, sc, clients+1)
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i*7 + i>>9)
	}
	fetchtest.ServeHTTPOn(t, hs[0], body)
	for _, h := range hs[1:] {
		if err := h.Connect(context.Background(), peer.AddrInfo{ID: hs[0].ID(), Addrs: hs[0].Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	sent0 := sent[0].sent.Load()
	res := httpResult{Clients: clients, Done: make([]time.Duration, clients)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i, h := range hs[1:] {
		wg.Go(func() {
			got, err := fetchtest.HTTPGetFrom(ctx, h, hs[0].ID())
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("client %d: got %d bytes of %d (%v)", i, len(got), len(body), err)
			}
			res.Done[i] = time.Since(start)
		})
	}
	wg.Wait()
	res.Sent = sent[0].sent.Load() - sent0
	return res
}
