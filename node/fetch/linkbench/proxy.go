package linkbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Config describes the link a Proxy puts between its clients and Target.
type Config struct {
	Target string        // TCP address the proxy forwards to
	RTT    time.Duration // round-trip propagation delay: RTT/2 each way
	Up     *Link         // client to target; nil: no rate limit
	Down   *Link         // target to client; nil: no rate limit
	// Buffer bounds the bytes held per direction: on the wire (rate x RTT/2)
	// plus the queue in front of the link. 0: rate x RTT + 64 KiB, so a
	// queue of at least RTT/2; 4 MiB for a direction without a rate.
	Buffer   int
	MaxConns int // connections at once, more are closed at once; 0: 64
}

const (
	chunkSize  = 16 << 10 // largest read; 1.3 ms at 100 Mbit/s
	maxChunks  = 4096     // chunks held per direction, whatever their size
	sockBuffer = 64 << 10 // kernel receive buffer of the proxy's sockets
	dialLimit  = 10 * time.Second
)

// Proxy is a TCP proxy on 127.0.0.1 that behaves like a long link:
//
//   - Delay: every chunk read from one side is stamped when it was read,
//     booked onto the direction's Link (it leaves when the bytes ahead of it
//     have left at the line rate) and written to the other side RTT/2 after
//     it left, never earlier. Chunks are released at those absolute times in
//     order; the delays of successive chunks overlap.
//   - Set-up: a TCP connection costs its handshake. The client's connect to
//     the proxy returns at once on loopback (time t0), so no byte of the
//     client leaves before t0+RTT (when the SYN-ACK would have reached it)
//     and none of the target leaves before t0+1.5 RTT (when the target's
//     accept would return): the first request arrives at t0+1.5 RTT, the
//     first answer at t0+2 RTT. The proxy dials the target at t0.
//   - Close: a FIN (EOF) is passed on as a half-close after the bytes before
//     it, RTT/2 later; any other read or write error aborts both sides.
//   - Bounds: per direction at most Buffer bytes (plus one chunk) and
//     maxChunks chunks are held; the proxy then stops reading and TCP's flow
//     control pushes back on the sender. Its sockets' kernel receive buffers
//     are 64 KiB, so the queue in front of the link is mostly the proxy's.
//     Nothing is ever dropped: TCP sees no loss, and its congestion control
//     runs on loopback (RTT ~0), so only the protocols above TCP feel the
//     delay.
type Proxy struct {
	cfg Config
	ln  *net.TCPListener

	mu    sync.Mutex
	conns map[*flow]struct{}
	wg    sync.WaitGroup
}

// Listen opens the proxy's listener on 127.0.0.1:0; Serve runs it.
func Listen(cfg Config) (*Proxy, error) {
	if cfg.Target == "" {
		return nil, errors.New("linkbench: no target")
	}
	if cfg.RTT < 0 || cfg.Buffer < 0 || cfg.MaxConns < 0 {
		return nil, errors.New("linkbench: negative RTT, Buffer or MaxConns")
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 64
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("linkbench: listen: %w", err)
	}
	return &Proxy{cfg: cfg, ln: ln, conns: map[*flow]struct{}{}}, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() *net.TCPAddr { return p.ln.Addr().(*net.TCPAddr) }

// Serve accepts and forwards connections until ctx ends, then closes the
// listener and every connection and returns once all of its goroutines
// have. It returns nil after ctx ended, else the accept error.
func (p *Proxy) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = p.ln.Close() })
	defer stop()
	var err error
	for {
		var c *net.TCPConn
		c, err = p.ln.AcceptTCP()
		if err != nil {
			break
		}
		p.start(ctx, c, time.Now())
	}
	_ = p.ln.Close()
	p.mu.Lock()
	for f := range p.conns {
		f.abort()
	}
	p.mu.Unlock()
	p.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("linkbench: accept: %w", err)
}

// start forwards client to the target in new goroutines.
func (p *Proxy) start(ctx context.Context, client *net.TCPConn, t0 time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) >= p.cfg.MaxConns || ctx.Err() != nil {
		_ = client.Close()
		return
	}
	fctx, cancel := context.WithCancel(ctx)
	f := &flow{client: client, done: make(chan struct{}), cancel: cancel}
	p.conns[f] = struct{}{}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f.run(fctx, p.cfg, t0)
		p.mu.Lock()
		delete(p.conns, f)
		p.mu.Unlock()
	}()
}

// flow is one proxied connection.
type flow struct {
	client *net.TCPConn
	done   chan struct{} // closed by abort
	cancel func()        // ends the dial; called by abort

	mu     sync.Mutex
	server *net.TCPConn // nil until dialled
	dirs   []*direction
	once   sync.Once
}

// abort closes both sides and stops both directions; safe to call twice.
func (f *flow) abort() {
	f.once.Do(func() {
		close(f.done)
		f.cancel()
		_ = f.client.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.server != nil {
			_ = f.server.Close()
		}
		for _, d := range f.dirs {
			d.stop()
		}
	})
}

func (f *flow) run(ctx context.Context, cfg Config, t0 time.Time) {
	defer f.abort()
	dctx, cancel := context.WithTimeout(ctx, dialLimit)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(dctx, "tcp", cfg.Target)
	if err != nil {
		return
	}
	server := c.(*net.TCPConn)
	up := newDirection(f, f.client, server, cfg.Up, cfg.RTT, t0.Add(cfg.RTT), cfg.Buffer)
	down := newDirection(f, server, f.client, cfg.Down, cfg.RTT, t0.Add(cfg.RTT*3/2), cfg.Buffer)
	f.mu.Lock()
	f.server, f.dirs = server, []*direction{up, down}
	aborted := f.isDone()
	f.mu.Unlock()
	if aborted {
		_ = server.Close()
		return
	}
	_ = f.client.SetReadBuffer(sockBuffer)
	_ = server.SetReadBuffer(sockBuffer)
	var wg sync.WaitGroup
	for _, d := range f.dirs {
		wg.Add(2)
		go func() { defer wg.Done(); d.read() }()
		go func() { defer wg.Done(); d.write() }()
	}
	wg.Wait()
}

func (f *flow) isDone() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// chunk is what was read at once, or the end of the stream (end set).
type chunk struct {
	data []byte
	at   time.Time // when it reaches the other side
	end  bool
	err  error // why the stream ended: io.EOF for a FIN
}

// direction moves one side's bytes to the other through the link.
type direction struct {
	f         *flow
	src, dst  *net.TCPConn
	link      *Link
	delay     time.Duration // one way
	notBefore time.Time     // no byte leaves before
	limit     int           // bytes held at most

	mu      sync.Mutex
	cond    sync.Cond
	q       []chunk
	held    int
	last    time.Time // at of the newest chunk
	stopped bool
}

func newDirection(f *flow, src, dst *net.TCPConn, l *Link, rtt time.Duration, notBefore time.Time, limit int) *direction {
	if limit == 0 {
		limit = 4 << 20
		if r := l.BytesPerSecond(); r > 0 {
			limit = int(r*rtt.Seconds()) + 64<<10
		}
	}
	d := &direction{f: f, src: src, dst: dst, link: l, delay: rtt / 2, notBefore: notBefore, limit: limit}
	d.cond.L = &d.mu
	return d
}

func (d *direction) stop() {
	d.mu.Lock()
	d.stopped = true
	d.cond.Broadcast()
	d.mu.Unlock()
}

// read stamps and queues what src sends, while the buffer has room.
func (d *direction) read() {
	for {
		d.mu.Lock()
		for (d.held >= d.limit || len(d.q) >= maxChunks) && !d.stopped {
			d.cond.Wait()
		}
		stopped := d.stopped
		d.mu.Unlock()
		if stopped {
			return
		}
		buf := make([]byte, chunkSize)
		n, err := d.src.Read(buf)
		ready := time.Now()
		if ready.Before(d.notBefore) {
			ready = d.notBefore
		}
		if n > 0 {
			data := buf[:n]
			if n < chunkSize/2 {
				data = append([]byte(nil), data...) // hold what was read, not 16 KiB
			}
			d.push(chunk{data: data, at: d.link.reserve(ready, n).Add(d.delay)})
		}
		if err != nil {
			d.push(chunk{end: true, err: err, at: ready.Add(d.delay)})
			return
		}
	}
}

func (d *direction) push(c chunk) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.at.Before(d.last) { // in order: a FIN follows the bytes before it
		c.at = d.last
	}
	d.last = c.at
	d.q = append(d.q, c)
	d.held += len(c.data)
	d.cond.Broadcast()
}

// write hands each chunk to dst at its time.
func (d *direction) write() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		for len(d.q) == 0 && !d.stopped {
			d.cond.Wait()
		}
		if d.stopped {
			d.mu.Unlock()
			return
		}
		c := d.q[0]
		d.q[0] = chunk{}
		d.q = d.q[1:]
		d.mu.Unlock()
		if wait := time.Until(c.at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-d.f.done:
				return
			}
		}
		if c.end {
			if errors.Is(c.err, io.EOF) {
				if d.dst.CloseWrite() == nil {
					return
				}
			}
			d.f.abort()
			return
		}
		_, err := d.dst.Write(c.data)
		d.mu.Lock()
		d.held -= len(c.data)
		d.cond.Broadcast()
		d.mu.Unlock()
		if err != nil {
			d.f.abort()
			return
		}
	}
}
