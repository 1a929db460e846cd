package api

import (
	"net/http"
	"time"
)

// Limits bound what one client can hold of the server: time per request and
// per idle connection, header bytes, and connections (see connLimit).
type Limits struct {
	ReadHeaderTimeout time.Duration // request line and headers
	ReadTimeout       time.Duration // the whole request, body included
	// WriteTimeout bounds handling and response of every route but the
	// long ones (publish, materialize, resolve: see longRoute).
	WriteTimeout   time.Duration
	IdleTimeout    time.Duration // a keep-alive connection between requests
	MaxHeaderBytes int
	MaxConns       int
}

// DefaultLimits are the daemon's limits. Request bodies are small JSON
// (at most maxBody), so 15 s to send one is generous (syncthing's API uses
// the same ReadTimeout); the status page polls every 2 s, well inside
// IdleTimeout; a browser opens at most 6 connections to a host, so 128
// serve a few pages, the CLI and Prometheus at once.
var DefaultLimits = Limits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       15 * time.Second,
	WriteTimeout:      time.Minute,
	IdleTimeout:       time.Minute,
	MaxHeaderBytes:    64 << 10,
	MaxConns:          128,
}

// WithLimits replaces DefaultLimits.
func WithLimits(l Limits) ServerOption {
	return func(s *Server) { s.limits = l }
}

// longRoute lifts the write deadline of r's connection for a route whose
// work can outlast WriteTimeout: fetching an expert, compressing or writing
// one. That work is bounded by its own limits (a fetch's deadline, the size
// limits), and a client that goes away cancels r.Context(). (ReadTimeout
// needs no lifting: once the body is read, net/http clears the read
// deadline.) The returned func sets a write deadline again, for the
// response alone; call it before writing.
func (s *Server) longRoute(w http.ResponseWriter) (respond func()) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	return func() {
		if s.limits.WriteTimeout > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(s.limits.WriteTimeout))
		}
	}
}
