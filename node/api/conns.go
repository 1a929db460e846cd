package api

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimit caps the connections the server holds at max. A connection
// either waits on its client (accepted and silent, idle between requests,
// sending its request line, headers or body, or the rest of a body its
// handler refused, or not reading its response) or is being served. At the
// cap a new connection takes the place of the one that has waited on its
// client the longest, so idle keep-alives, silent sockets, slow headers or
// bodies and slow readers cannot lock other clients out; when all max are
// being served, Accept waits for one to end (newcomers queue in the kernel's
// backlog). The server so runs at most max connections' goroutines.
type connLimit struct {
	net.Listener
	max int

	mu      sync.Mutex
	cond    *sync.Cond // signalled when a connection ends or starts to wait
	conns   map[*limitedConn]struct{}
	closed  bool
	evicted uint64
}

type limitedConn struct {
	net.Conn
	l *connLimit
	// since is when it began to wait on its client; zero while it is
	// served. Guarded by l.mu.
	since time.Time
}

func newConnLimit(ln net.Listener, max int) *connLimit {
	l := &connLimit{Listener: ln, max: max, conns: map[*limitedConn]struct{}{}}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// Accept accepts a connection, making room for it as the type says.
func (l *connLimit) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.conns) >= l.max && !l.closed {
		if v := l.longestWaiting(); v != nil {
			delete(l.conns, v)
			l.evicted++
			v.Conn.Close()
			continue
		}
		l.cond.Wait()
	}
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	lc := &limitedConn{Conn: c, l: l, since: time.Now()}
	l.conns[lc] = struct{}{}
	return lc, nil
}

// Close closes the listener and wakes an Accept waiting for room.
func (l *connLimit) Close() error {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
	return l.Listener.Close()
}

func (l *connLimit) longestWaiting() *limitedConn {
	var v *limitedConn
	for c := range l.conns {
		if !c.since.IsZero() && (v == nil || c.since.Before(v.since)) {
			v = c
		}
	}
	return v
}

// stats returns the connections held and those closed to make room.
func (l *connLimit) stats() (held int, evicted uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns), l.evicted
}

func (c *limitedConn) Close() error {
	l := c.l
	l.mu.Lock()
	if _, ok := l.conns[c]; ok {
		delete(l.conns, c)
		l.cond.Broadcast()
	}
	l.mu.Unlock()
	return c.Conn.Close()
}

// wait marks c as waiting on its client (since now, unless it already was)
// or as served.
func (c *limitedConn) wait(waiting bool) {
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case !waiting:
		c.since = time.Time{}
	case c.since.IsZero():
		c.since = time.Now()
		l.cond.Broadcast()
	}
}

// connState is the http.Server's ConnState hook: a connection idle between
// requests waits on its client.
func (l *connLimit) connState(c net.Conn, s http.ConnState) {
	if lc, ok := c.(*limitedConn); ok && s == http.StateIdle {
		lc.wait(true)
	}
}

type connKey struct{}

// connContext is the http.Server's ConnContext hook: it gives handlers the
// connection, for waitOnClient.
func (l *connLimit) connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// track marks the connection served while its handler runs, except while
// its client is to act: sending the body (readJSON) or taking a response
// that does not fit the socket's buffers (a write that blocks).
func (l *connLimit) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := r.Context().Value(connKey{}).(*limitedConn)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		c.wait(false)
		// After the handler the server flushes the response, reads what
		// is left of the body, then the next request: the client's turn.
		defer c.wait(true)
		next.ServeHTTP(&clientWriter{ResponseWriter: w, c: c}, r)
	})
}

// clientWriter marks its connection as waiting on the client during each
// write: a write blocks while the client does not read.
type clientWriter struct {
	http.ResponseWriter
	c *limitedConn
}

func (w *clientWriter) Write(b []byte) (int, error) {
	w.c.wait(true)
	defer w.c.wait(false)
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *clientWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// waitOnClient marks the connection of a request's context as waiting on
// its client (reading the body) or as served; without a connLimit it does
// nothing.
func waitOnClient(ctx context.Context, waiting bool) {
	if c, ok := ctx.Value(connKey{}).(*limitedConn); ok {
		c.wait(waiting)
	}
}
