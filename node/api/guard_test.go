package api

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseHostAndOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"Node1":               "node1",
		"node1.lan.":          "node1.lan",
		"[::1]":               "::1",
		"::FFFF:127.0.0.1":    "127.0.0.1",
		"192.168.1.5":         "192.168.1.5",
		"node1:5180":          "",
		"http://node1":        "",
		"":                    "",
		"*":                   "",
		"evil.example/x":      "",
		"user@node1":          "",
		"fe80::1%eth0":        "fe80::1%eth0",
		"2001:DB8::1":         "2001:db8::1",
		"[2001:db8::1]:5180":  "",
		"localhost":           "localhost",
		" spaced.example.org": "spaced.example.org",
	} {
		got, err := ParseHost(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("ParseHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"http://127.0.0.1:5180":       "http://127.0.0.1:5180",
		"HTTP://LocalHost:5180/":      "http://localhost:5180",
		"http://example.org:80":       "http://example.org",
		"https://example.org:443":     "https://example.org",
		"https://example.org:8443":    "https://example.org:8443",
		"http://[::1]:5180":           "http://[::1]:5180",
		"chrome-extension://abcdefgh": "chrome-extension://abcdefgh",
		"null":                        "",
		"http://example.org/path":     "",
		"http://u:p@example.org":      "",
		"http://example.org?q":        "",
		"example.org":                 "",
		"file:///etc/passwd":          "",
	} {
		got, err := ParseOrigin(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestGuardHost: which Host headers name the API, for a connection that
// arrived on local.
func TestGuardHost(t *testing.T) {
	g, err := newGuard(Access{Hosts: []string{"node1", "Expertd.LAN", "[fd00::5]"}})
	if err != nil {
		t.Fatal(err)
	}
	lo4 := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5180}
	lo6 := &net.TCPAddr{IP: net.ParseIP("::1"), Port: 5180}
	lan := &net.TCPAddr{IP: net.ParseIP("192.168.1.5"), Port: 5180}
	for _, tc := range []struct {
		host  string
		local net.Addr
		ok    bool
	}{
		{"127.0.0.1:5180", lo4, true},
		{"127.0.0.1", lo4, true},
		{"127.0.0.2:5180", lo4, true}, // all of 127/8 is loopback
		{"localhost:5180", lo4, true},
		{"LOCALHOST:5180", lo4, true},
		{"localhost.:5180", lo4, true},
		{"localhost:8080", lo4, true}, // ssh -L 8080:127.0.0.1:5180: the port is not compared
		{"[::1]:5180", lo6, true},
		{"[::1]", lo6, true},
		{"[::ffff:127.0.0.1]:5180", lo4, true},
		{"::1", lo6, false}, // an IPv6 Host needs brackets
		{"evil.example:5180", lo4, false},
		{"evil.example", lo4, false},
		{"myhost:5180", lo4, false}, // a name that resolves to loopback today may not tomorrow
		{"localhost.evil.example:5180", lo4, false},
		{"127.0.0.1.nip.io:5180", lo4, false},
		{"sub.localhost:5180", lo4, false},
		{"0.0.0.0:5180", lo4, false},
		{"[::]:5180", lo6, false},
		{"192.168.1.5:5180", lan, true}, // the address the connection arrived on
		{"192.168.1.6:5180", lan, false},
		{"192.168.1.5:5180", lo4, false},
		{"node1:5180", lan, true},
		{"NODE1:5180", lan, true},
		{"node1.:5180", lan, true},
		{"node2:5180", lan, false},
		{"expertd.lan:5180", lan, true},
		{"[fd00::5]:5180", lan, true},
		{"[fd00::6]:5180", lan, false},
		{"127.0.0.1:abc", lo4, false},
		{"127.0.0.1:5180:1", lo4, false},
		{"", lo4, false},
		{"[::1", lo6, false},
		{"127.0.0.1:5180", nil, true},
		{"192.168.1.5:5180", nil, false},
	} {
		if got := g.hostAllowed(tc.host, tc.local); got != tc.ok {
			t.Errorf("Host %q on %v: allowed %v, want %v", tc.host, tc.local, got, tc.ok)
		}
	}
}

// TestGuardRequests: what a browser (or anything else) sends, and what the
// guard does with it.
func TestGuardRequests(t *testing.T) {
	g, err := newGuard(Access{Origins: []string{"https://dash.example.org"}})
	if err != nil {
		t.Fatal(err)
	}
	const own = "127.0.0.1:5180"
	json := "application/json"
	for _, tc := range []struct {
		name, method, host string
		h                  map[string]string
		status             int    // 0: passes
		cors               string // the Access-Control-Allow-Origin sent
	}{
		{"CLI GET", "GET", own, nil, 0, ""},
		{"CLI POST", "POST", own, map[string]string{"Content-Type": json}, 0, ""},
		{"JSON with charset", "POST", own, map[string]string{"Content-Type": "application/json; charset=utf-8"}, 0, ""},
		{"curl POST without a type", "POST", own, nil, 415, ""},
		{"DELETE without a type", "DELETE", own, nil, 415, ""},
		{"text/plain POST", "POST", own, map[string]string{"Content-Type": "text/plain"}, 415, ""},
		{"form POST", "POST", own, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, ""},
		{"json-ish type", "POST", own, map[string]string{"Content-Type": "application/jsonx"}, 415, ""},
		{"bad type", "POST", own, map[string]string{"Content-Type": ";;"}, 415, ""},
		{"status page fetch", "GET", own, map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}, 0, ""},
		{"status page POST", "POST", own, map[string]string{"Origin": "http://127.0.0.1:5180", "Sec-Fetch-Site": "same-origin", "Content-Type": json}, 0, ""},
		{"typed URL", "GET", own, map[string]string{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}, 0, ""},
		{"link from another site", "GET", own, map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, 0, ""},
		{"foreign page simple POST", "POST", own, map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, 403, ""},
		{"foreign page JSON POST", "POST", own, map[string]string{"Origin": "http://evil.example", "Content-Type": json}, 403, ""},
		{"foreign page GET", "GET", own, map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, 403, ""},
		{"foreign preflight", "OPTIONS", own, map[string]string{"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}, 403, ""},
		{"other port of localhost", "POST", own, map[string]string{"Origin": "http://127.0.0.1:8000", "Content-Type": json}, 403, ""},
		{"localhost vs 127.0.0.1", "POST", own, map[string]string{"Origin": "http://localhost:5180", "Content-Type": json}, 403, ""},
		{"https of own origin", "POST", own, map[string]string{"Origin": "https://127.0.0.1:5180", "Content-Type": json}, 403, ""},
		{"null origin (sandbox, file:)", "POST", own, map[string]string{"Origin": "null", "Content-Type": json}, 403, ""},
		{"img tag", "GET", own, map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}, 403, ""},
		{"img tag same-site", "GET", own, map[string]string{"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"}, 403, ""},
		{"cross-site POST no origin", "POST", own, map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Content-Type": json}, 403, ""},
		{"rebinding", "POST", "evil.example:5180", map[string]string{"Origin": "http://evil.example:5180", "Sec-Fetch-Site": "same-origin", "Content-Type": json}, 403, ""},
		{"rebinding GET", "GET", "evil.example:5180", nil, 403, ""},
		{"allowed origin", "POST", own, map[string]string{"Origin": "https://dash.example.org", "Sec-Fetch-Site": "cross-site", "Content-Type": json}, 0, "https://dash.example.org"},
		{"allowed origin, other case", "GET", own, map[string]string{"Origin": "HTTPS://DASH.example.org:443"}, 0, "HTTPS://DASH.example.org:443"},
		{"allowed origin, text/plain", "POST", own, map[string]string{"Origin": "https://dash.example.org", "Content-Type": "text/plain"}, 415, ""},
		{"allowed origin over http", "POST", own, map[string]string{"Origin": "http://dash.example.org", "Content-Type": json}, 403, ""},
		{"allowed origin, rebinding host", "GET", "evil.example:5180", map[string]string{"Origin": "https://dash.example.org"}, 403, ""},
	} {
		r := httptest.NewRequest(tc.method, "/v1/publish", strings.NewReader(""))
		r.Host = tc.host
		for k, v := range tc.h {
			r.Header.Set(k, v)
		}
		cors, status, err := g.check(r, &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5180})
		if status != tc.status || (err == nil) != (tc.status == 0) || cors != tc.cors {
			t.Errorf("%s: status %d (%v), cors %q; want %d, %q", tc.name, status, err, cors, tc.status, tc.cors)
		}
	}
}

// TestGuardPreflight: an allowed origin gets a CORS preflight answered; the
// request itself then carries the CORS header.
func TestGuardPreflight(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	g, _ := newGuard(Access{Origins: []string{"https://dash.example.org"}})
	h := g.wrap(next)
	r := httptest.NewRequest(http.MethodOptions, "/v1/publish", nil)
	r.Host = "127.0.0.1:5180"
	r.Header.Set("Origin", "https://dash.example.org")
	r.Header.Set("Access-Control-Request-Method", "POST")
	r.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "https://dash.example.org" ||
		!strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Errorf("preflight: %d %v", w.Code, w.Header())
	}
	r = httptest.NewRequest(http.MethodGet, "/v1/status", nil)
	r.Host = "127.0.0.1:5180"
	r.Header.Set("Origin", "https://dash.example.org")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusTeapot || w.Header().Get("Access-Control-Allow-Origin") != "https://dash.example.org" {
		t.Errorf("allowed GET: %d %v", w.Code, w.Header())
	}
	// The API's own page gets no CORS header: it needs none.
	r.Header.Set("Origin", "http://127.0.0.1:5180")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusTeapot || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("own origin GET: %d %v", w.Code, w.Header())
	}
	if _, err := newGuard(Access{Hosts: []string{"node1:5180"}, Origins: []string{"null"}}); err == nil {
		t.Error("newGuard took a host with a port and the null origin")
	}
}
