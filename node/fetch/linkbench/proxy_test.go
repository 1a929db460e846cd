package linkbench

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestLinkReserve(t *testing.T) {
	l := NewLink(8e6) // 1 MB/s: 1 µs a byte
	t0 := time.Unix(1000, 0)
	for _, c := range []struct {
		ready time.Time
		n     int
		want  time.Duration
	}{
		{t0, 1000, time.Millisecond},                                   // idle link: leaves at its rate
		{t0, 1000, 2 * time.Millisecond},                               // queued behind the first
		{t0.Add(10 * time.Millisecond), 500, 10500 * time.Microsecond}, // idle again: no credit
	} {
		if got := l.reserve(c.ready, c.n).Sub(t0); got != c.want {
			t.Fatalf("reserve(%v, %d) = t0+%v, want t0+%v", c.ready.Sub(t0), c.n, got, c.want)
		}
	}
	var unlimited *Link
	if got := unlimited.reserve(t0, 1<<30); !got.Equal(t0) {
		t.Fatalf("nil link delayed by %v", got.Sub(t0))
	}
}

// echoServer echoes every connection until the client half-closes, then
// closes it; it stops with the test.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// startProxy runs a proxy for cfg until the test ends.
func startProxy(t *testing.T, cfg Config) *Proxy {
	t.Helper()
	p, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return p
}

func dial(t *testing.T, p *Proxy) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestProxyRoundTrips: the first answer on a new connection takes two round
// trips (handshake, request), the next one one.
func TestProxyRoundTrips(t *testing.T) {
	const rtt = 80 * time.Millisecond
	p := startProxy(t, Config{Target: echoServer(t), RTT: rtt})
	start := time.Now()
	c := dial(t, p)
	ping := func() time.Duration {
		t0 := time.Now()
		if _, err := c.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		return time.Since(t0)
	}
	ping()
	first := time.Since(start)
	second := ping()
	t.Logf("first answer after %v, second %v (RTT %v)", first, second, rtt)
	if first < 2*rtt || second < rtt {
		t.Fatalf("answers after %v and %v: faster than 2 RTT and 1 RTT", first, second)
	}
	// Loose bounds: a machine under load delays timers, but not by a
	// round trip per chunk.
	if first > 2*rtt+time.Second || second > rtt+time.Second {
		t.Fatalf("answers after %v and %v", first, second)
	}
}

// transfer sends n random bytes through p to the echo server, half-closes
// and reads them back; it returns how long that took.
func transfer(t *testing.T, p *Proxy, n int) time.Duration {
	t.Helper()
	data := make([]byte, n)
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	start := time.Now()
	c := dial(t, p)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c) // until the echo server's FIN comes through
	d := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes back, not the %d sent", len(got), len(data))
	}
	return d
}

// TestProxyRate: bytes arrive intact, paced to the link rate, and the
// delay of successive chunks overlaps (a sleep per chunk would take
// 64 chunks x RTT/2 = 3.2 s each way).
func TestProxyRate(t *testing.T) {
	const (
		rtt  = 100 * time.Millisecond
		bits = 40e6 // 5 MB/s
		n    = 1 << 20
	)
	p := startProxy(t, Config{Target: echoServer(t), RTT: rtt, Up: NewLink(bits), Down: NewLink(bits)})
	d := transfer(t, p, n)
	floor := time.Duration(n/(bits/8)*float64(time.Second)) + 2*rtt
	t.Logf("1 MiB there and back in %v (floor %v)", d, floor)
	if d < floor {
		t.Fatalf("faster than the link: %v < %v", d, floor)
	}
	if d > 2*floor+time.Second {
		t.Fatalf("%v: the delays do not overlap", d)
	}
}

// TestProxySharedLink: two proxies whose downlink is one Link carry no more
// than its rate together.
func TestProxySharedLink(t *testing.T) {
	const (
		bits = 40e6
		n    = 1 << 20
	)
	down := NewLink(bits)
	target := echoServer(t)
	a := startProxy(t, Config{Target: target, RTT: 20 * time.Millisecond, Down: down})
	b := startProxy(t, Config{Target: target, RTT: 20 * time.Millisecond, Down: down})
	start := time.Now()
	var wg sync.WaitGroup
	for _, p := range []*Proxy{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); transfer(t, p, n) }()
	}
	wg.Wait()
	d := time.Since(start)
	if min := time.Duration(2 * n / (bits / 8) * float64(time.Second)); d < min {
		t.Fatalf("2 MiB over one 40 Mbit/s downlink in %v < %v", d, min)
	}
}

// TestProxyServeCloses: ending Serve closes the connections it carries,
// with bytes still held, and leaves no goroutine behind.
func TestProxyServeCloses(t *testing.T) {
	target := echoServer(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent()) // the echo server's connection ends too
	p, err := Listen(Config{Target: target, RTT: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx) }()
	c, err := net.DialTCP("tcp", nil, p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("held for half an hour")); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after Serve returned")
	}
	if _, err := net.DialTCP("tcp", nil, p.Addr()); err == nil {
		t.Fatal("listener still open after Serve returned")
	}
}

// TestProxyTargetDown: a client of a proxy whose target refuses is closed.
func TestProxyTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := startProxy(t, Config{Target: addr, RTT: 10 * time.Millisecond})
	c := dial(t, p)
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a proxy without target", n)
	}
}

// TestProxyMaxConns: connections over the limit are closed, the others
// carry on.
func TestProxyMaxConns(t *testing.T) {
	p := startProxy(t, Config{Target: echoServer(t), MaxConns: 1})
	first := dial(t, p)
	if _, err := first.Write([]byte{7}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(first, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	second := dial(t, p)
	if n, err := second.Read(make([]byte, 1)); err == nil {
		t.Fatalf("second connection read %d bytes over MaxConns 1", n)
	}
	if _, err := first.Write([]byte{8}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(first, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
}

func TestListenRejects(t *testing.T) {
	for _, cfg := range []Config{{}, {Target: "127.0.0.1:1", RTT: -1}, {Target: "127.0.0.1:1", Buffer: -1}} {
		if p, err := Listen(cfg); err == nil {
			p.ln.Close()
			t.Fatalf("Listen(%+v) accepted", cfg)
		}
	}
}
