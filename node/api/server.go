package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/expertd/expertd/internal/slogutil"
)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// Server serves the API.
type Server struct {
	backend Backend
	token   string
	log     *slog.Logger
	metrics http.Handler
	access  Access
	limits  Limits
	handler http.Handler
	conns   atomic.Pointer[connLimit] // while Serve runs
}

// ServerOption configures a Server.
type ServerOption func(*Server)

// WithMetrics serves h, a Prometheus handler, at GET /metrics.
func WithMetrics(h http.Handler) ServerOption {
	return func(s *Server) { s.metrics = h }
}

// WithAccess admits the hosts and origins of a besides the loopback names
// and the API's own origin.
func WithAccess(a Access) ServerOption {
	return func(s *Server) { s.access = a }
}

// NewServer returns a server over b. With a non-empty token every route but
// /v1/health and the status page's static files requires
// "Authorization: Bearer TOKEN"; that includes /metrics, so a Prometheus
// scrape config sets it (authorization: {credentials: TOKEN}). The page
// itself is opened as /?token=TOKEN and sends the token on from there.
// Before any of that, every request passes the guard (guard.go).
func NewServer(b Backend, token string, log *slog.Logger, opts ...ServerOption) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{backend: b, token: token, log: log, limits: DefaultLimits}
	for _, o := range opts {
		o(s)
	}
	s.handler = s.routes()
	return s
}

// Handler returns the HTTP handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.handler }

// routes is the route table.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", s.health)
	// The status page's files carry no data: they load without the token.
	mux.Handle("GET /{$}", uiFile("index.html"))
	mux.Handle("GET /ui/{file}", uiFiles())
	auth := func(h http.HandlerFunc) http.Handler { return s.authenticate(h) }
	mux.Handle("GET /v1/status", auth(s.status))
	mux.Handle("GET /v1/id", auth(s.identity))
	mux.Handle("GET /v1/peers", auth(s.peers))
	mux.Handle("GET /v1/experts", auth(s.experts))
	mux.Handle("GET /v1/experts/{cid}", auth(s.expert))
	mux.Handle("DELETE /v1/experts/{cid}", auth(s.remove))
	mux.Handle("POST /v1/experts/{cid}/pin", auth(s.pin(true)))
	mux.Handle("POST /v1/experts/{cid}/unpin", auth(s.pin(false)))
	mux.Handle("POST /v1/experts/{cid}/materialize", auth(s.materialize))
	mux.Handle("POST /v1/publish", auth(s.publish))
	mux.Handle("POST /v1/merge", auth(s.merge))
	mux.Handle("POST /v1/fetch/{cid}", auth(s.startFetch))
	mux.Handle("GET /v1/fetch/{cid}", auth(s.transfer))
	mux.Handle("DELETE /v1/fetch/{cid}", auth(s.cancelFetch))
	mux.Handle("GET /v1/resolve/{name...}", auth(s.name))
	mux.Handle("POST /v1/resolve/{name...}", auth(s.resolve))
	if s.metrics != nil {
		mux.Handle("GET /metrics", s.authenticate(s.metrics))
	}
	g, err := newGuard(s.access)
	if err != nil { // config.Validate refuses these first
		s.log.Warn("ignoring bad access entries", slogutil.Err(err))
	}
	return s.logRequests(g.wrap(mux))
}

// Serve serves on ln until ctx is done, then shuts down, waiting (up to 5 s)
// for handlers in flight; their request contexts derive from ctx. The
// server's Limits bound each connection and their number.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	lim := s.limits
	cl := newConnLimit(ln, max(lim.MaxConns, 1))
	srv := &http.Server{
		Handler:           cl.track(s.handler),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ConnState:         cl.connState,
		ConnContext:       cl.connContext,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.conns.Store(cl)
	ln = cl
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return err
}

func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.token == "" {
		return next
	}
	want := []byte("Bearer " + s.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		s.log.Debug("request", "method", r.Method, "url", r.URL.Path, "status", sw.status, "took", time.Since(start))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	p, err := ParsePage(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	st := s.backend.Status(p)
	// Empty lists as [], not null, for the page.
	st.Node.Addrs = orEmpty(st.Node.Addrs)
	st.Peers = orEmpty(st.Peers)
	st.Experts = orEmpty(st.Experts)
	st.Transfers = orEmpty(st.Transfers)
	st.Adapters = orEmpty(st.Adapters)
	writeJSON(w, http.StatusOK, st)
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *Server) identity(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.backend.Identity())
}

func (s *Server) peers(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.backend.Peers())
}

func (s *Server) experts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := Filter{Remote: q.Get("remote") == "1" || q.Get("remote") == "true", BaseModel: q.Get("base_model"), PeftType: q.Get("peft_type"), Name: q.Get("name")}
	p, err := ParsePage(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	page := s.backend.Experts(f, p)
	page.Experts = orEmpty(page.Experts)
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) expert(w http.ResponseWriter, r *http.Request) {
	e, err := s.backend.Expert(r.PathValue("cid"))
	respond(w, e, err)
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request) {
	respond(w, map[string]string{"removed": r.PathValue("cid")}, s.backend.Remove(r.PathValue("cid")))
}

func (s *Server) pin(pinned bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := r.PathValue("cid")
		respond(w, map[string]any{"cid": c, "pinned": pinned}, s.backend.Pin(c, pinned))
	}
}

func (s *Server) materialize(w http.ResponseWriter, r *http.Request) {
	var req MaterializeRequest
	if !readJSON(w, r, &req) {
		return
	}
	done := s.longRoute(w)
	m, err := s.backend.Materialize(r.Context(), r.PathValue("cid"), req)
	done()
	respond(w, m, err)
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	var req PublishRequest
	if !readJSON(w, r, &req) {
		return
	}
	done := s.longRoute(w)
	e, err := s.backend.Publish(r.Context(), req)
	done()
	respond(w, e, err)
}

func (s *Server) merge(w http.ResponseWriter, r *http.Request) {
	var req MergeRequest
	if !readJSON(w, r, &req) {
		return
	}
	done := s.longRoute(w)
	e, err := s.backend.Merge(r.Context(), req)
	done()
	respond(w, e, err)
}

func (s *Server) startFetch(w http.ResponseWriter, r *http.Request) {
	t, err := s.backend.StartFetch(r.PathValue("cid"))
	if err == nil {
		writeJSON(w, http.StatusAccepted, t)
		return
	}
	respond(w, t, err)
}

func (s *Server) transfer(w http.ResponseWriter, r *http.Request) {
	t, err := s.backend.Transfer(r.PathValue("cid"))
	respond(w, t, err)
}

func (s *Server) cancelFetch(w http.ResponseWriter, r *http.Request) {
	t, err := s.backend.CancelFetch(r.Context(), r.PathValue("cid"))
	respond(w, t, err)
}

func (s *Server) resolve(w http.ResponseWriter, r *http.Request) {
	var req ResolveRequest
	if !readJSONOrEmpty(w, r, &req) {
		return
	}
	done := s.longRoute(w)
	m, err := s.backend.Resolve(r.Context(), r.PathValue("name"), req)
	done()
	respond(w, m, err)
}

func (s *Server) name(w http.ResponseWriter, r *http.Request) {
	info, err := s.backend.Name(r.PathValue("name"))
	if err == nil {
		info.Versions = orEmpty(info.Versions)
	}
	respond(w, info, err)
}

// readJSON decodes r's body into v. While it reads, the connection waits
// on its client (see connLimit).
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	waitOnClient(r.Context(), true)
	defer waitOnClient(r.Context(), false)
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
		return false
	}
	return true
}

// readJSONOrEmpty is readJSON for an optional body: none leaves v as is.
func readJSONOrEmpty(w http.ResponseWriter, r *http.Request, v any) bool {
	waitOnClient(r.Context(), true)
	defer waitOnClient(r.Context(), false)
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
		return false
	}
	return true
}

func respond(w http.ResponseWriter, v any, err error) {
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	msg := err.Error()
	// Sentinels read as a prefix; keep the detail.
	msg = strings.TrimSpace(msg)
	writeJSON(w, status, errorBody{Error: msg})
}
