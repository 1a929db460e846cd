package api

import (
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// Access says which names and web origins may use the API besides the
// loopback names and the API's own origin (api.allowed_hosts and
// api.allowed_origins).
type Access struct {
	// Hosts are extra names (or IPs) the Host header may carry, without a
	// port: the names the API is reached by on a LAN or behind a proxy.
	Hosts []string
	// Origins are web origins (scheme://host[:port]) whose pages may call
	// the API; they get CORS headers. Empty: only the status page's own.
	Origins []string
}

// ParseHost returns the canonical form of an api.allowed_hosts entry: a
// name or an IP (IPv6 with or without brackets), without a port.
func ParseHost(s string) (string, error) {
	h := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap().String(), nil
	}
	if h == "" || strings.ContainsAny(h, ":/@ \t[]%*") {
		return "", fmt.Errorf("%q is not a host name or IP without a port", s)
	}
	return h, nil
}

// ParseOrigin returns the canonical form of a web origin: scheme://host,
// lower-cased, with the port unless it is the scheme's default. Paths,
// queries, user info and the opaque origin "null" are refused.
func ParseOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", fmt.Errorf("%q is not an origin (scheme://host[:port])", s)
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

// guard holds the checks every request passes before any route: a Host
// naming this API (DNS rebinding), no foreign web origin (CSRF), and a JSON
// content type on every request that may change state, so that no "simple"
// cross-site request (a form, text/plain) reaches a handler.
type guard struct {
	hosts   map[string]bool
	origins map[string]bool
}

func newGuard(a Access) (*guard, error) {
	g := &guard{hosts: map[string]bool{}, origins: map[string]bool{}}
	var errs []error
	for _, s := range a.Hosts {
		h, err := ParseHost(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("allowed host: %w", err))
		}
		g.hosts[h] = true
	}
	for _, s := range a.Origins {
		o, err := ParseOrigin(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("allowed origin: %w", err))
		}
		g.origins[o] = true
	}
	return g, errors.Join(errs...)
}

// Why a request was refused; each names the setting that would admit it.
var (
	errHost        = errors.New("refused: the Host header names neither this API nor an entry of api.allowed_hosts (DNS rebinding?)")
	errOrigin      = errors.New("cross-origin request refused: the Origin is not the API's own nor in api.allowed_origins")
	errCrossSite   = errors.New("cross-site request refused (Sec-Fetch-Site): only the API's own pages, api.allowed_origins and non-browser clients may call it")
	errContentType = errors.New("unsupported media type: send Content-Type: application/json on POST, PUT, PATCH and DELETE, with a body or without")
)

// wrap refuses what check refuses and answers CORS preflights from allowed
// origins; everything else goes on to next.
func (g *guard) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		cors, status, err := g.check(r, local)
		if err != nil {
			writeError(w, status, err)
			return
		}
		if cors != "" {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", cors)
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// check decides on r, which arrived on the local address local. It returns
// the origin to send CORS headers to ("" for none), or the status and the
// reason to refuse r.
func (g *guard) check(r *http.Request, local net.Addr) (cors string, status int, err error) {
	if !g.hostAllowed(r.Host, local) {
		return "", http.StatusForbidden, errHost
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		o, err := ParseOrigin(origin)
		own, _ := ParseOrigin("http://" + r.Host)
		switch {
		case err == nil && o == own:
			// The status page itself.
		case err == nil && g.origins[o]:
			cors = origin
		default:
			return "", http.StatusForbidden, errOrigin
		}
	} else if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" &&
		!(safeMethod(r.Method) && r.Header.Get("Sec-Fetch-Mode") == "navigate") {
		// A cross-site request a browser sent without an Origin: an <img>,
		// <script> or no-cors GET. Following a link (navigate) is allowed:
		// GETs change nothing and the page that linked reads nothing.
		return "", http.StatusForbidden, errCrossSite
	}
	if !safeMethod(r.Method) {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			return "", http.StatusUnsupportedMediaType, errContentType
		}
	}
	return cors, 0, nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// hostAllowed reports whether hostport, a Host header, names this API: a
// loopback name or IP, the IP the connection arrived on, or an allowed host.
// The port is not compared: a rebinding page controls the name, not the
// port, and a tunnel or port mapping (ssh -L 8080:..., docker -p) changes
// the port the client sees.
func (g *guard) hostAllowed(hostport string, local net.Addr) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil { // no port
		host, port = hostport, ""
		if strings.Contains(host, ":") && !(strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]")) {
			return false // a bare IPv6 address is not a valid Host
		}
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	h, err := ParseHost(host)
	if err != nil {
		return false
	}
	if h == "localhost" || g.hosts[h] {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && (ip.IsLoopback() || ip.WithZone("") == localIP(local))
}

// localIP is the IP of a connection's local address, or the zero Addr.
func localIP(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(t.IP); ok {
			return ip.Unmap().WithZone("")
		}
	}
	return netip.Addr{}
}
