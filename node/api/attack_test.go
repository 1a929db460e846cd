package api

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
)

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
		{"GET resolve (curl)", "GET", "/v1/resolve/a", "", nil, 405},
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
	if _, err := c.Resolve(ctx, "a"); err != nil {
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
