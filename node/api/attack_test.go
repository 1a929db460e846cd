package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/expertd/expertd/node/expert"
)

var floodConns = flag.Int("api-flood", 0, "connections per kind in TestConnFloods (0: 10 x the test's cap)")

// attack sends method path with body and headers, Host included, on a
// fresh connection, as a browser or a script would, and returns the status.
func attack(t *testing.T, base, method, path, body string, h map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestWebPageAttacks: requests a hostile web page can make a browser send
// (a cross-site simple request, DNS rebinding, an <img>) against a real
// server on loopback change nothing; the CLI's requests still work.
func TestWebPageAttacks(t *testing.T) {
	c, b := newTestAPI(t, "")
	host := strings.TrimPrefix(c.base, "http://")
	_, port, _ := net.SplitHostPort(host)
	publish := `{"path":"/home/user/private-adapter","name":"stolen"}`
	mat := `{"dir":"/home/user/.ssh"}`
	for _, a := range []struct {
		name, method, path, body string
		h                        map[string]string
		want                     int
	}{
		{"cross-site form-like POST /v1/publish", "POST", "/v1/publish", publish,
			map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain;charset=UTF-8"}, 403},
		{"cross-site POST materialize", "POST", "/v1/experts/bafka/materialize", mat,
			map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain"}, 403},
		{"cross-site POST fetch", "POST", "/v1/fetch/bafkq", "",
			map[string]string{"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"}, 403},
		{"cross-site pin, JSON type (the browser would preflight)", "POST", "/v1/experts/bafka/pin", "",
			map[string]string{"Origin": "https://evil.example", "Content-Type": "application/json"}, 403},
		{"DNS rebinding publish", "POST", "/v1/publish", publish,
			map[string]string{"Host": "evil.example:" + port, "Origin": "http://evil.example:" + port, "Content-Type": "application/json"}, 403},
		{"DNS rebinding status", "GET", "/v1/status", "", map[string]string{"Host": "evil.example:" + port}, 403},
		{"<img> resolve", "GET", "/v1/resolve/a", "",
			map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}, 403},
		{"GET resolve (curl): a lookup, nothing fetched", "GET", "/v1/resolve/a", "", nil, 200},
		{"publish without a content type", "POST", "/v1/publish", publish, nil, 415},
		{"sandboxed iframe (Origin: null)", "POST", "/v1/publish", publish,
			map[string]string{"Origin": "null", "Content-Type": "application/json"}, 403},
	} {
		if got := attack(t, c.base, a.method, a.path, a.body, a.h); got != a.want {
			t.Errorf("%s: HTTP %d, want %d", a.name, got, a.want)
		}
	}
	if len(b.experts) != 1 || len(b.pinned) != 0 {
		t.Fatalf("an attack changed the backend: experts %v, pinned %v", b.experts, b.pinned)
	}
	// The CLI, curl with the documented headers, and the status page's
	// own origin still work.
	ctx := context.Background()
	if _, err := c.Resolve(ctx, "a", ResolveRequest{}); err != nil {
		t.Errorf("client resolve: %v", err)
	}
	if err := c.Pin(ctx, "bafka", true); err != nil {
		t.Errorf("client pin: %v", err)
	}
	if got := attack(t, c.base, "POST", "/v1/publish", publish, map[string]string{"Content-Type": "application/json"}); got != 200 {
		t.Errorf("curl publish with the documented header: HTTP %d", got)
	}
	if got := attack(t, c.base, "POST", "/v1/experts/bafka/unpin", "",
		map[string]string{"Origin": c.base, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}); got != 200 {
		t.Errorf("same-origin POST: HTTP %d", got)
	}
	if got := attack(t, c.base, "GET", "/v1/status", "", map[string]string{"Host": "localhost:" + port}); got != 200 {
		t.Errorf("Host localhost: HTTP %d", got)
	}
}

// TestClientDialsLoopbackForUnspecified: with api.listen 0.0.0.0:PORT the
// CLI dials loopback, whose Host the API takes.
func TestClientDialsLoopbackForUnspecified(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:5180":   "http://127.0.0.1:5180",
		"[::]:5180":      "http://[::1]:5180",
		"127.0.0.1:5180": "http://127.0.0.1:5180",
		"node1:5180":     "http://node1:5180",
		"http://x:1/":    "http://x:1",
	} {
		if got := NewClient(in, "").base; got != want {
			t.Errorf("NewClient(%q): %s, want %s", in, got, want)
		}
	}
	c, _ := newTestAPI(t, "")
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(c.base, "http://"))
	if err := NewClient("0.0.0.0:"+port, "").Health(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// flood is one kind of connection an attacker holds open.
type flood struct {
	name string
	// open dials and sends what this kind sends, then leaves the
	// connection as the attacker does.
	open func(addr string) (net.Conn, error)
}

var floods = []flood{
	{"silent", func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }},
	{"idle keep-alive", func(addr string) (net.Conn, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(c, "GET /v1/health HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return c, nil
	}},
	{"slow headers", func(addr string) (net.Conn, error) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			fmt.Fprintf(c, "GET /v1/health HTTP/1.1\r\nHost: %s\r\nX-Slow: ", addr)
		}
		return c, err
	}},
	{"slow body", func(addr string) (net.Conn, error) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			fmt.Fprintf(c, "POST /v1/publish HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", addr)
		}
		return c, err
	}},
}

// closedByPeer reports whether the server has closed c, reading what it
// sent (an error response) on the way.
func closedByPeer(c net.Conn, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestConnTimeouts: each kind of held connection is cut by the server's
// timeouts (shortened here) with nobody else asking for room.
func TestConnTimeouts(t *testing.T) {
	lim := Limits{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: time.Second,
		IdleTimeout: 500 * time.Millisecond, MaxHeaderBytes: 8 << 10, MaxConns: 64}
	b := &fakeBackend{experts: map[string]Expert{}, pinned: map[string]bool{}}
	base := serve(t, NewServer(b, "", nil, WithLimits(lim)))
	addr := strings.TrimPrefix(base, "http://")
	for _, f := range floods {
		t.Run(f.name, func(t *testing.T) {
			const n = 20
			conns := make([]net.Conn, 0, n)
			start := time.Now()
			for range n {
				c, err := f.open(addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				conns = append(conns, c)
			}
			// Every one is cut; generously within a few of its timeouts.
			for i, c := range conns {
				if !closedByPeer(c, 10*time.Second) {
					t.Fatalf("connection %d still open after %v", i, time.Since(start))
				}
			}
			t.Logf("%d %s connections all cut after %v (timeouts: header %v, read %v, idle %v)",
				n, f.name, time.Since(start).Round(time.Millisecond), lim.ReadHeaderTimeout, lim.ReadTimeout, lim.IdleTimeout)
		})
	}
}

// TestConnFloods: an attacker opens ten times the connection cap of each
// kind, with timeouts so long that only the cap can help: the server holds
// at most MaxConns of them, its goroutines stay bounded, and honest
// requests are served at once.
func TestConnFloods(t *testing.T) {
	lim := DefaultLimits
	lim.MaxConns = 32
	lim.ReadHeaderTimeout, lim.ReadTimeout, lim.IdleTimeout = time.Minute, time.Minute, time.Minute
	n := *floodConns
	if n == 0 {
		n = 10 * lim.MaxConns
	}
	b := &fakeBackend{experts: map[string]Expert{}, pinned: map[string]bool{}}
	s := NewServer(b, "", nil, WithLimits(lim))
	base := serve(t, s)
	addr := strings.TrimPrefix(base, "http://")
	honest := NewClient(base, "")
	honest.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	before := runtime.NumGoroutine()
	for _, f := range floods {
		t.Run(f.name, func(t *testing.T) {
			_, evicted0 := s.conns.Load().stats()
			start := time.Now()
			conns := make([]net.Conn, 0, n)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			maxHeld, maxG := 0, 0
			for i := range n {
				c, err := f.open(addr)
				if err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				conns = append(conns, c)
				if i%lim.MaxConns == lim.MaxConns-1 {
					held, _ := s.conns.Load().stats()
					maxHeld, maxG = max(maxHeld, held), max(maxG, runtime.NumGoroutine())
				}
			}
			opened := time.Since(start)
			// An honest request is served while the flood holds on.
			t0 := time.Now()
			if _, err := honest.Identity(context.Background()); err != nil {
				t.Fatalf("honest request during the flood: %v", err)
			}
			took := time.Since(t0)
			held, evicted := s.conns.Load().stats()
			maxHeld, maxG = max(maxHeld, held), max(maxG, runtime.NumGoroutine())
			// The server closes a connection to make room as the next one
			// arrives; under load the last closes may still be on their way:
			// count again until the count is within the cap or 5 s passed.
			still := conns
			for deadline := time.Now().Add(5 * time.Second); ; {
				still = slices.DeleteFunc(slices.Clone(still), func(c net.Conn) bool { return closedByPeer(c, time.Millisecond) })
				if len(still) <= lim.MaxConns || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			open := len(still)
			t.Logf("%d %s connections (opened in %v): server held at most %d, still open %d, closed to make room %d; "+
				"goroutines %d -> at most %d; honest request took %v",
				n, f.name, opened.Round(time.Millisecond), maxHeld, open, evicted-evicted0, before, maxG, took.Round(time.Microsecond))
			if maxHeld > lim.MaxConns || open > lim.MaxConns {
				t.Errorf("server held %d (open %d), cap %d", maxHeld, open, lim.MaxConns)
			}
			// Per connection the server runs one goroutine and, while a
			// handler waits, one background read; those of the connections
			// closed to make room end as soon as they see it (the peak above
			// may catch some still on their way out).
			bound := before + 2*lim.MaxConns + 16
			deadline := time.Now().Add(10 * time.Second)
			for runtime.NumGoroutine() > bound {
				if time.Now().After(deadline) {
					t.Fatalf("goroutines %d with the flood held, over %d (2 x %d connections)", runtime.NumGoroutine(), bound, lim.MaxConns)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestLongRoutesOutliveWriteTimeout: publish, materialize and resolve may
// work longer than WriteTimeout and ReadTimeout; their answer arrives.
func TestLongRoutesOutliveWriteTimeout(t *testing.T) {
	lim := DefaultLimits
	lim.ReadTimeout, lim.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond
	b := &slowBackend{fakeBackend: fakeBackend{experts: map[string]Expert{"bafka": {CID: "bafka", Metadata: expert.Metadata{
		Name: "a",
	}}}, pinned: map[string]bool{}},
		delay: 500 * time.Millisecond}
	base := serve(t, NewServer(b, "", nil, WithLimits(lim)))
	c := NewClient(base, "")
	ctx := context.Background()
	if _, err := c.Resolve(ctx, "a", ResolveRequest{}); err != nil {
		t.Errorf("resolve: %v", err)
	}
	if _, err := c.Publish(ctx, PublishRequest{Path: "/x"}); err != nil {
		t.Errorf("publish: %v", err)
	}
	if _, err := c.Materialize(ctx, "bafka", MaterializeRequest{Dir: "/d"}); err != nil {
		t.Errorf("materialize: %v", err)
	}
	// A short route that overruns WriteTimeout gets no answer.
	if _, err := c.Peers(ctx); err == nil {
		t.Error("a slow GET /v1/peers outlived WriteTimeout")
	}
}

// slowBackend takes delay over the long routes and over Peers, checking
// that the request context was not cancelled meanwhile.
type slowBackend struct {
	fakeBackend
	delay time.Duration
}

func (s *slowBackend) wait(ctx context.Context) error {
	select {
	case <-time.After(s.delay):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("request context cancelled: %w", context.Cause(ctx))
	}
}

func (s *slowBackend) Resolve(ctx context.Context, name string, r ResolveRequest) (Materialized, error) {
	if err := s.wait(ctx); err != nil {
		return Materialized{}, err
	}
	return s.fakeBackend.Resolve(ctx, name, r)
}

func (s *slowBackend) Publish(ctx context.Context, r PublishRequest) (Expert, error) {
	if err := s.wait(ctx); err != nil {
		return Expert{}, err
	}
	return s.fakeBackend.Publish(ctx, r)
}

func (s *slowBackend) Materialize(ctx context.Context, c string, r MaterializeRequest) (Materialized, error) {
	if err := s.wait(ctx); err != nil {
		return Materialized{}, err
	}
	return s.fakeBackend.Materialize(ctx, c, r)
}

func (s *slowBackend) Peers() []Peer {
	time.Sleep(s.delay)
	return s.fakeBackend.Peers()
}

// TestSlowReaders: clients that ask for a response larger than the socket
// buffers and never read it hold their handler in a write; at the cap they
// are closed for an honest newcomer like any other connection waiting on its
// client, long before WriteTimeout.
func TestSlowReaders(t *testing.T) {
	lim := DefaultLimits
	lim.MaxConns, lim.WriteTimeout = 8, time.Minute
	big := bytes.Repeat([]byte("expertd_padding 1\n"), 8<<20/18) // beyond the kernel's 4 MiB send buffer
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(big) })
	s := NewServer(&fakeBackend{}, "", nil, WithLimits(lim), WithMetrics(metrics))
	base := serve(t, s)
	addr := strings.TrimPrefix(base, "http://")
	// A receive buffer of 4 KiB, set before connecting, keeps the window
	// small: the server's writes block.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		_ = rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range lim.MaxConns {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		// Its handler is writing once the response begins to arrive.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	honest := NewClient(base, "")
	honest.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	t0 := time.Now()
	if _, err := honest.Identity(context.Background()); err != nil {
		t.Fatalf("honest request behind %d slow readers: %v", len(conns), err)
	}
	held, evicted := s.conns.Load().stats()
	t.Logf("%d slow readers of an 8 MiB response: server holds %d, closed %d to make room; honest request took %v",
		len(conns), held, evicted, time.Since(t0).Round(time.Microsecond))
}
