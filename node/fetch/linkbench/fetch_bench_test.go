package linkbench

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/expertd/expertd/node/fetch"
	"github.com/expertd/expertd/node/fetch/fetchtest"
	"github.com/expertd/expertd/node/p2p"
)

// BenchmarkFetchProxy measures the time to a verified 10 MiB expert over a
// 100 ms RTT, 100 Mbit/s link made by Proxy on 127.0.0.1 (libp2p over TCP
// only), from one and from three providers, next to plain HTTP/1.1 and
// HTTPS (TLS 1.3) over the same link. The requester has one access link, a
// Link each way shared by all its proxies, so three providers share its
// downlink and the floor is size/bandwidth + 2 RTT = 1.039 s whatever the
// number of providers.
//
//	conn=fresh  the requester's connections are closed before the clock
//	            starts and the fetch dials: TCP, security and muxer
//	            handshakes and identify are timed. HTTP(S): a new TCP
//	            connection (and TLS handshake) per request, no keep-alive.
//	conn=warm   an untimed warm-up transfer first, then back-to-back
//	            transfers on the same connections (libp2p: a new stream
//	            each; HTTP(S): keep-alive).
//
// The host=expertd cases run the same fetches between hosts configured as
// the daemon's: its stream muxer (p2p.Muxer: yamux streams start with a
// 4 MiB receive window, go-libp2p's default 256 KiB) and its TCP transport
// (p2p.TCP: the security handshake starts without waiting for the answer to
// its proposal). The others run go-libp2p's defaults.
// Reported: s/fetch (median of the iterations), s_floor and x_floor, their
// ratio (the target for expertd is 1.1). Every iteration is logged with when
// the (last) connection was up and when the first data came (fetch: the
// first verified 1 MiB leaf; HTTP: the first response byte). Run with
//
//	go test ./node/fetch/linkbench -run '^$' -bench . -benchtime 3x
func BenchmarkFetchProxy(b *testing.B) {
	if testing.Short() {
		b.Skip("100 ms links in real time: over a second an iteration")
	}
	const (
		rtt  = 100 * time.Millisecond
		bits = 100e6
		size = 10 << 20
	)
	scenes := []struct {
		name string
		s    *scene
	}{
		{"", newScene(b, rtt, bits, size, libp2p.Transport(tcp.NewTCPTransport))},
		{"host=expertd/", newScene(b, rtt, bits, size, p2p.Muxer(), p2p.TCP())},
	}
	floor := scenes[0].s.floor()
	b.Logf("link: %v RTT, %v Mbit/s each way, requester's links shared; floor %v", rtt, bits/1e6, floor)
	for _, conn := range []string{"fresh", "warm"} {
		for _, sc := range scenes {
			for _, c := range sc.s.cases(sc.name == "") {
				b.Run("conn="+conn+"/"+sc.name+c.name, func(b *testing.B) {
					b.SetBytes(size)
					fresh := conn == "fresh"
					if !fresh {
						sc.s.measure(b, c, false) // warm-up, untimed
					}
					var times []time.Duration
					for b.Loop() {
						t := sc.s.measure(b, c, fresh)
						b.Logf("%v (%.2f x floor): connected %v, first data %v", t.total.Round(time.Millisecond),
							t.total.Seconds()/floor.Seconds(), t.conn.Round(time.Millisecond), t.first.Round(time.Millisecond))
						times = append(times, t.total)
					}
					slices.Sort(times)
					median := times[len(times)/2].Seconds()
					b.ReportMetric(median, "s/fetch")
					b.ReportMetric(floor.Seconds(), "s_floor")
					b.ReportMetric(median/floor.Seconds(), "x_floor")
				})
			}
		}
	}
}

// timing is one transfer: when the (last) connection was up, when the first
// data arrived (see BenchmarkFetchProxy) and when all had; all from the
// start.
type timing struct{ conn, first, total time.Duration }

// linkCase is one way of getting the expert's bytes to the requester.
type linkCase struct {
	name  string
	peers []host.Host // fetch: the providers; nil for HTTP
	warm  *http.Transport
	url   string      // HTTP: what to get
	tls   *tls.Config // HTTPS: the client's configuration
}

func (s *scene) cases(withHTTP bool) []linkCase {
	cs := []linkCase{{name: "providers=1", peers: s.provs[:1]}, {name: "providers=3", peers: s.provs}}
	if withHTTP {
		cs = append(cs,
			linkCase{name: "http", url: s.httpURL, warm: &http.Transport{DisableCompression: true}},
			linkCase{name: "https", url: s.httpsURL, tls: s.https, warm: &http.Transport{DisableCompression: true, TLSClientConfig: s.https}})
	}
	return cs
}

// measure runs c once, checks what arrived and returns its timing; with
// fresh, on new connections, else on those left by what ran before. A
// benchmark's timer runs only while c does.
func (s *scene) measure(b *testing.B, c linkCase, fresh bool) timing {
	b.StopTimer()
	defer b.StartTimer()
	if c.peers != nil {
		if fresh {
			s.disconnect(b, c.peers)
		} else {
			s.connect(b, c.peers)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var firstByte atomic.Int64
	first := func() {
		firstByte.CompareAndSwap(0, time.Now().UnixNano())
	}
	var (
		got  func() []byte
		conn time.Duration
		err  error
	)
	b.StartTimer()
	start := time.Now()
	if c.peers != nil {
		s.connected.Store(0)
		dst := fetchtest.NewMem() // a fresh empty store every time
		_, err = fetch.NewFetcher(s.req, dst, fetch.Options{}).Fetch(ctx, s.layout.Root, ids(c.peers), func(p fetch.Progress) {
			if p.Bytes > 0 {
				first()
			}
		})
		got = func() []byte { b, _ := fetchtest.ReadFile(dst, s.layout); return b }
		if t := s.connected.Load(); t != 0 {
			conn = time.Unix(0, t).Sub(start)
		}
	} else {
		var body []byte
		body, conn, err = s.httpGet(ctx, c, fresh, first)
		got = func() []byte { return body }
	}
	total := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatalf("%s: %v", c.name, err)
	}
	if !bytes.Equal(got(), s.data) {
		b.Fatalf("%s: received bytes differ from the expert", c.name)
	}
	t := timing{conn: conn, total: total}
	if f := firstByte.Load(); f != 0 {
		t.first = time.Unix(0, f).Sub(start)
	}
	return t
}

// httpGet downloads the expert over HTTP/1.1: with fresh on a new TCP
// connection (no keep-alive), else on c's keep-alive connection. It returns
// the body and when the connection was ready to carry the request.
func (s *scene) httpGet(ctx context.Context, c linkCase, fresh bool, first func()) ([]byte, time.Duration, error) {
	tr := c.warm
	if fresh {
		tr = &http.Transport{DisableKeepAlives: true, DisableCompression: true, TLSClientConfig: c.tls}
		defer tr.CloseIdleConnections()
	}
	start := time.Now()
	var conn time.Duration
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn:              func(httptrace.GotConnInfo) { conn = time.Since(start) },
		GotFirstResponseByte: first,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("http: %s", resp.Status)
	}
	var out bytes.Buffer
	out.Grow(int(max(resp.ContentLength, 0)))
	if _, err := io.Copy(&out, resp.Body); err != nil {
		return nil, 0, err
	}
	return out.Bytes(), conn, nil
}
