package fetch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/unixfs"
	pb "github.com/expertd/expertd/proto"
)

// Options configures a Fetcher.
type Options struct {
	MaxSize      uint64        // largest expert accepted (default 4 GiB)
	MaxProviders int           // providers used at once (default 8)
	IdleTimeout  time.Duration // a stream silent this long fails (default 20s)
	// MinRate (bytes/s) sets the whole fetch's deadline once the size is
	// known: 30s + size/MinRate (default 64 KiB/s).
	MinRate    float64
	BadPeerTTL time.Duration // how long a peer that sent a bad block is avoided (default 10m)
	// Stall ends a fetch that has had no new leaf (nor an offer of one)
	// for this long: its providers stayed busy or slow, or its partial
	// holders never got what it lacks (default 30s).
	Stall  time.Duration
	Logger *slog.Logger
	// Received, if set, is called for every verified block stored.
	Received func(p peer.ID, bytes int)
	// Rejected, if set, is called when a peer's block or header fails
	// verification.
	Rejected func(p peer.ID)
	// Failed, if set, is called when a provider could not serve root (it
	// was unreachable, refused, broke off or sent bad data).
	Failed func(root cid.Cid, p peer.ID, err error)
}

func (o *Options) defaults() {
	if o.MaxSize == 0 {
		o.MaxSize = 4 << 30
	}
	if o.MaxProviders == 0 {
		o.MaxProviders = 8
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 20 * time.Second
	}
	if o.MinRate == 0 {
		o.MinRate = 64 << 10
	}
	if o.BadPeerTTL == 0 {
		o.BadPeerTTL = 10 * time.Minute
	}
	if o.Stall == 0 {
		o.Stall = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Progress reports a fetch's state: bytes and leaves held of the total.
type Progress struct {
	Bytes, Total   uint64
	Leaves, OfLeaf int
}

// Fetcher pulls experts from providers into a block store.
type Fetcher struct {
	host   host.Host
	blocks Blocks
	opts   Options

	now func() time.Time // the clock (tests move it)

	mu  sync.Mutex
	bad map[peer.ID]time.Time // peers that sent blocks failing verification
}

// NewFetcher returns a Fetcher writing into b.
func NewFetcher(h host.Host, b Blocks, o Options) *Fetcher {
	o.defaults()
	return &Fetcher{host: h, blocks: b, opts: o, now: time.Now, bad: map[peer.ID]time.Time{}}
}

// IsBad reports whether p sent a block that failed verification less
// than Options.BadPeerTTL ago: no fetch asks it meanwhile.
func (f *Fetcher) IsBad(p peer.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.bad[p]
	if ok && f.now().Sub(t) > f.opts.BadPeerTTL {
		delete(f.bad, p)
		return false
	}
	return ok
}

func (f *Fetcher) markBad(p peer.ID) {
	f.mu.Lock()
	f.bad[p] = f.now()
	f.mu.Unlock()
}

// Fetch makes every block of root present in the store, fetching what is
// missing from providers (one request per provider, the leaves split between
// them, work re-assigned from failed or slow ones). Blocks already held are
// not fetched again. On success it returns the verified layout; on failure
// the verified blocks stay stored so a later Fetch resumes.
func (f *Fetcher) Fetch(ctx context.Context, root cid.Cid, providers []peer.ID, progress func(Progress)) (*unixfs.Layout, error) {
	return f.FetchFrom(ctx, root, func() []peer.ID { return providers }, progress)
}

// FetchFrom is Fetch from the providers that providers returns, which it
// calls again while the fetch runs: peers that start holding the expert
// meanwhile (partial holders among them) join the fetch.
func (f *Fetcher) FetchFrom(ctx context.Context, root cid.Cid, providers func() []peer.ID, progress func(Progress)) (*unixfs.Layout, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &run{
		f: f, root: root, progress: progress, src: providers, events: make(chan event, 16),
		idle: map[peer.ID]bool{}, excluded: map[peer.ID]error{},
		later: map[peer.ID]time.Time{}, backoff: map[peer.ID]time.Duration{}, holds: map[peer.ID]holding{},
		pooledAt: map[uint64]time.Time{},
	}
	if l, err := localLayout(ctx, f.blocks, root, f.opts.MaxSize); err == nil {
		if err := r.setLayout(l, false); err != nil {
			return nil, err
		}
		if r.complete() {
			return l, nil
		}
	}
	r.addPeers(providers())
	if len(r.idle) == 0 {
		return nil, fmt.Errorf("%w for %s", ErrNoProviders, root)
	}
	return r.loop(ctx)
}

// run is the state of one Fetch, owned by its loop goroutine.
type run struct {
	f        *Fetcher
	root     cid.Cid
	progress func(Progress)
	src      func() []peer.ID // providers, polled while the fetch runs
	events   chan event

	layout     *unixfs.Layout
	have       []bool
	held       int
	bytes      uint64
	pool       []uint64 // leaves to assign
	parts      []uint32 // shares to re-request while the layout is unknown
	nparts     uint32
	rank       []int // a random order of the leaves: ties in rarity break by it
	idle       map[peer.ID]bool
	excluded   map[peer.ID]error // peers not to ask again in this fetch
	active     map[*worker]bool
	later      map[peer.ID]time.Time     // busy peers, idle again at that time
	backoff    map[peer.ID]time.Duration // a busy peer's next wait
	holds      map[peer.ID]holding       // what partial holders said they hold
	pooledAt   map[uint64]time.Time      // when schedule first saw a leaf waiting in the pool
	rate       map[peer.ID]float64       // bytes/s of a peer's last finished request
	rtt        map[peer.ID]time.Duration // request to header, per peer
	lastErr    error
	deadline   <-chan time.Time
	progressAt time.Time // start, the layout, the last header offering leaves, or the last new leaf
}

type worker struct {
	peer   peer.ID
	req    *pb.FetchRequest
	want   []uint64 // leaves the provider will send, in order (nil before its header)
	next   int      // index into want of the next leaf expected
	limit  int      // stop after want[:limit]; lowered when work is stolen
	cut    bool     // cancelled by us after reaching limit
	cancel context.CancelFunc

	started time.Time // request sent
	header  time.Time // header received
	got     uint64    // bytes received
}

type eventKind int

const (
	evHeader eventKind = iota
	evBlock
	evEnd
)

type event struct {
	w      *worker
	kind   eventKind
	layout *unixfs.Layout
	want   []uint64
	asked  []uint64 // evHeader: the leaves the request asked, ascending
	have   []bool   // evHeader: the provider's holdings; nil: all
	index  uint64
	size   int
	err    error
}

func (r *run) setLayout(l *unixfs.Layout, storeNodes bool) error {
	if storeNodes {
		for _, b := range l.Nodes { // nodes first: a restarted fetch can resume from them
			if err := r.f.blocks.PutBlock(b.Cid, b.Data); err != nil {
				return fmt.Errorf("store node: %w", err)
			}
		}
	}
	r.layout = l
	r.have = make([]bool, len(l.Leaves))
	r.rank = rand.Perm(len(l.Leaves))
	for i, leaf := range l.Leaves {
		if ok, err := r.f.blocks.HasBlock(leaf.Cid); err == nil && ok {
			r.have[i] = true
			r.held++
			r.bytes += leaf.Size
		}
	}
	timeout := 30*time.Second + time.Duration(float64(l.Size)/r.f.opts.MinRate*float64(time.Second))
	r.deadline = time.After(timeout)
	return nil
}

func (r *run) complete() bool { return r.layout != nil && r.held == len(r.have) }

func (r *run) report() {
	if r.progress != nil && r.layout != nil {
		r.progress(Progress{Bytes: r.bytes, Total: r.layout.Size, Leaves: r.held, OfLeaf: len(r.have)})
	}
}

func (r *run) loop(ctx context.Context) (*unixfs.Layout, error) {
	r.active = map[*worker]bool{}
	r.rate, r.rtt = map[peer.ID]float64{}, map[peer.ID]time.Duration{}
	defer func() { // stop and drain every worker so none leaks
		for w := range r.active {
			w.cancel()
		}
		for len(r.active) > 0 {
			if ev := <-r.events; ev.kind == evEnd {
				delete(r.active, ev.w)
			}
		}
	}()
	if r.layout != nil {
		r.pool = r.missing()
		r.report()
	} else {
		r.nparts = uint32(min(len(r.idle), r.f.opts.MaxProviders))
		for i := range r.nparts {
			r.parts = append(r.parts, i)
		}
	}
	r.progressAt = time.Now()
	r.schedule(ctx)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if r.complete() {
			return r.layout, nil
		}
		if len(r.active) == 0 && len(r.later) == 0 && !r.waitForHolders() {
			err := r.lastErr
			if err == nil {
				err = ErrNoProviders
			}
			return nil, fmt.Errorf("%w: %s: %d of %d leaves: %w", ErrIncomplete, r.root, r.held, len(r.have), err)
		}
		// Busy providers, partial holders that lack the rest or answer
		// with nothing: wait for them, but not forever.
		if time.Since(r.progressAt) > r.f.opts.Stall {
			return nil, fmt.Errorf("%w: %s: %d of %d leaves, none for %v: providers busy, slow or holding nothing more", ErrIncomplete, r.root, r.held, len(r.have), r.f.opts.Stall)
		}
		select {
		case ev := <-r.events:
			if err := r.handle(ctx, ev); err != nil {
				return nil, err
			}
		case <-tick.C:
			r.poll(ctx)
		case <-r.deadline:
			return nil, fmt.Errorf("%w: %s: timed out with %d of %d leaves", ErrIncomplete, r.root, r.held, len(r.have))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (r *run) handle(ctx context.Context, ev event) error {
	w := ev.w
	switch ev.kind {
	case evHeader:
		first := r.layout == nil
		if first {
			if err := r.setLayout(ev.layout, true); err != nil {
				return err
			}
		}
		// A non-nil want marks the header as received, even when it
		// offers nothing.
		if w.want, w.limit = ev.want, len(ev.want); w.want == nil {
			w.want = []uint64{}
		}
		w.header = time.Now()
		if first || len(ev.want) > 0 {
			r.progressAt = w.header // the layout, or leaves on their way
		}
		r.rtt[w.peer] = w.header.Sub(w.started)
		if ev.have != nil {
			r.holds[w.peer] = holding{have: ev.have, at: w.header}
		} else {
			delete(r.holds, w.peer)
		}
		// What was asked but not offered goes back to the pool.
		if len(ev.asked) > len(w.want) {
			offered := make(map[uint64]bool, len(w.want))
			for _, i := range w.want {
				offered[i] = true
			}
			for _, i := range ev.asked {
				if !offered[i] && !r.have[i] {
					r.pool = append(r.pool, i)
				}
			}
			r.schedule(ctx)
		}
		r.report()
	case evBlock:
		if w.want != nil {
			w.next++
		}
		w.got += uint64(ev.size)
		if !r.have[ev.index] {
			r.progressAt = time.Now()
			r.have[ev.index] = true
			r.held++
			r.bytes += uint64(ev.size)
			r.report()
		}
		if w.want != nil && w.next >= w.limit && w.limit < len(w.want) {
			w.cut = true
			w.cancel()
		}
		if len(r.idle) > 0 { // a victim's rate is known from its first block on
			r.schedule(ctx)
		}
	case evEnd:
		delete(r.active, w)
		if w.want == nil && len(w.req.GetRanges()) > 0 {
			for _, rg := range w.req.GetRanges() { // failed before its header
				for i := rg.GetStart(); i < rg.GetEnd(); i++ {
					if !r.have[i] {
						r.pool = append(r.pool, i)
					}
				}
			}
		} else if w.want == nil && w.req.GetParts() > 0 {
			r.parts = append(r.parts, w.req.GetPart())
		} else if w.want != nil && w.next < w.limit {
			// Past limit was stolen: the thief's. Blocks already in flight
			// when a cut worker was cancelled may take next past limit.
			for _, i := range w.want[w.next:w.limit] {
				if !r.have[i] {
					r.pool = append(r.pool, i)
				}
			}
		}
		switch {
		case ev.err == nil || w.cut:
			r.idle[w.peer] = true
			delete(r.backoff, w.peer)
			if d := time.Since(w.header); w.got > 0 && !w.header.IsZero() && d > 0 {
				r.rate[w.peer] = float64(w.got) / d.Seconds()
			}
		case errors.Is(ev.err, ErrVerify):
			r.f.markBad(w.peer)
			if r.f.opts.Rejected != nil {
				r.f.opts.Rejected(w.peer)
			}
			r.excluded[w.peer] = ev.err
			r.lastErr = ev.err
			r.f.opts.Logger.Warn("fetch: peer sent a block that failed verification", "peer", w.peer, "cid", r.root, "err", ev.err)
		case ctx.Err() != nil:
		case errors.Is(ev.err, ErrBusy):
			// Serving others: ask again later, not a failure.
			d := min(2*r.backoff[w.peer], maxBusyWait)
			if d == 0 {
				d = minBusyWait
			}
			r.backoff[w.peer] = d
			r.later[w.peer] = time.Now().Add(d/2 + rand.N(d/2))
		default:
			r.excluded[w.peer] = ev.err
			r.lastErr = ev.err
			r.f.opts.Logger.Info("fetch: provider failed", "peer", w.peer, "cid", r.root, "err", ev.err)
		}
		if ev.err != nil && !w.cut && ctx.Err() == nil && !errors.Is(ev.err, ErrBusy) && r.f.opts.Failed != nil {
			r.f.opts.Failed(r.root, w.peer, ev.err)
		}
		r.schedule(ctx)
	}
	return nil
}

// missing lists the leaves not held, in order.
func (r *run) missing() []uint64 {
	var m []uint64
	for i, ok := range r.have {
		if !ok {
			m = append(m, uint64(i))
		}
	}
	return m
}

func (r *run) start(ctx context.Context, p peer.ID, req *pb.FetchRequest) {
	delete(r.idle, p)
	wctx, cancel := context.WithCancel(ctx)
	w := &worker{peer: p, req: req, cancel: cancel, started: time.Now()}
	r.active[w] = true
	known := r.layout
	go func() {
		err := r.f.stream(wctx, w, r.root, known, r.events)
		cancel()
		r.events <- event{w: w, kind: evEnd, err: err}
	}()
}

// toRanges compresses sorted leaf indices into ranges.
func toRanges(idx []uint64) []*pb.LeafRange {
	var out []*pb.LeafRange
	for _, i := range idx {
		if n := len(out); n > 0 && out[n-1].End == i {
			out[n-1].End++
			continue
		}
		out = append(out, &pb.LeafRange{Start: i, End: i + 1})
	}
	return out
}

// stream runs one request against one provider: it verifies the header
// (unless the layout is known), then every leaf, storing each.
func (f *Fetcher) stream(ctx context.Context, w *worker, root cid.Cid, known *unixfs.Layout, events chan<- event) error {
	s, err := openStream(ctx, f.host, w.peer)
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	var buf []byte
	if _, err := pb.WriteFrame(s, w.req, buf); err != nil {
		_ = s.Reset()
		return err
	}
	if err := s.CloseWrite(); err != nil {
		_ = s.Reset()
		return err
	}
	br := bufio.NewReaderSize(s, 256<<10)
	err = f.receive(ctx, br, func() { _ = s.SetReadDeadline(time.Now().Add(f.opts.IdleTimeout)) }, w, root, known, events)
	if err != nil {
		var re *remoteErr
		if !errors.As(err, &re) {
			_ = s.Reset()
		}
		return err
	}
	return nil
}

// remoteErr marks an error the provider reported in a FetchError frame: the
// stream ended cleanly.
type remoteErr struct{ err error }

func (e *remoteErr) Error() string { return e.err.Error() }
func (e *remoteErr) Unwrap() error { return e.err }

// receive reads a provider's answer from br: the header (verified against
// root unless the layout is known), then every leaf the header promises,
// each verified and stored, then the end of the stream. deadline is called
// before each frame. It is the code that faces untrusted bytes (FuzzReceive).
func (f *Fetcher) receive(ctx context.Context, br *bufio.Reader, deadline func(), w *worker, root cid.Cid, known *unixfs.Layout, events chan<- event) error {
	var buf []byte
	var frame pb.FetchFrame
	deadline()
	if err := readMsg(br, &frame, maxHeaderFrame, &buf); err != nil {
		return expected(err, "the header")
	}
	if e := frame.GetError(); e != nil {
		return &remoteErr{remoteError(e)}
	}
	hdr := frame.GetHeader()
	if hdr == nil {
		return fmt.Errorf("%w: first frame is not a header", ErrFrame)
	}
	layout := known
	var err error
	if layout == nil {
		if layout, err = remoteLayout(ctx, root, hdr.GetSize(), hdr.GetLeaves(), hdr.GetNodes(), f.opts.MaxSize); err != nil {
			return err
		}
	} else if hdr.GetSize() != layout.Size || hdr.GetLeaves() != uint64(len(layout.Leaves)) {
		return fmt.Errorf("%w: header says %d bytes in %d leaves, expected %d in %d", ErrVerify, hdr.GetSize(), hdr.GetLeaves(), layout.Size, len(layout.Leaves))
	}
	asked := askedLeaves(w.req, uint64(len(layout.Leaves)))
	want, err := checkRanges(asked, hdr.GetRanges(), uint64(len(layout.Leaves)))
	if err != nil {
		return err
	}
	have, err := decodeHave(hdr.GetHave(), uint64(len(layout.Leaves)))
	if err != nil {
		return err
	}
	if len(want) == 0 && holdsAsked(asked, have) {
		// An honest provider offers at least one asked leaf it holds: one
		// that says it holds some and offers none would keep the requester
		// waiting on it (and away from full providers) for nothing.
		return fmt.Errorf("%w: provider offers none of the asked leaves it says it holds", ErrFrame)
	}
	events <- event{w: w, kind: evHeader, layout: layout, asked: asked, want: want, have: have}
	for _, idx := range want {
		deadline()
		if err := readMsg(br, &frame, maxBlockFrame, &buf); err != nil {
			return expected(err, fmt.Sprintf("leaf %d", idx))
		}
		if e := frame.GetError(); e != nil {
			return &remoteErr{remoteError(e)}
		}
		b := frame.GetBlock()
		if b == nil || b.GetIndex() != idx {
			return fmt.Errorf("%w: expected leaf %d", ErrFrame, idx)
		}
		leaf := layout.Leaves[idx]
		if err := leaf.Verify(b.GetData()); err != nil {
			return fmt.Errorf("%w: leaf %d: %w", ErrVerify, idx, err)
		}
		if err := f.blocks.PutBlock(leaf.Cid, b.GetData()); err != nil {
			return fmt.Errorf("store leaf %d: %w", idx, err)
		}
		if f.opts.Received != nil {
			f.opts.Received(w.peer, len(b.GetData()))
		}
		events <- event{w: w, kind: evBlock, index: idx, size: len(b.GetData())}
	}
	deadline()
	if _, err := br.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: data after the last leaf", ErrFrame)
	}
	return nil
}

// checkRanges checks that the provider will send asked leaves only, in
// order (a partial or loaded provider offers some of them), and returns
// those leaves.
func checkRanges(asked []uint64, got []*pb.LeafRange, n uint64) ([]uint64, error) {
	var want []uint64
	j := 0
	for _, g := range got {
		if g.GetStart() >= g.GetEnd() || g.GetEnd() > n {
			return nil, fmt.Errorf("%w: provider offers range [%d, %d) of %d leaves", ErrFrame, g.GetStart(), g.GetEnd(), n)
		}
		for i := g.GetStart(); i < g.GetEnd(); i++ {
			for j < len(asked) && asked[j] < i {
				j++
			}
			if j == len(asked) || asked[j] != i {
				return nil, fmt.Errorf("%w: provider offers leaf %d, not asked or out of order", ErrFrame, i)
			}
			want = append(want, i)
			j++
		}
	}
	return want, nil
}

// holdsAsked reports whether have (nil: every leaf) holds an asked leaf.
func holdsAsked(asked []uint64, have []bool) bool {
	for _, i := range asked {
		if have == nil || have[i] {
			return true
		}
	}
	return false
}

// askedLeaves lists, ascending, the leaves req asks of n: those of the
// ranges the provider resolves it to (wanted; a requester's own request is
// valid for the layout it was made for).
func askedLeaves(req *pb.FetchRequest, n uint64) []uint64 {
	rs, _ := wanted(req, n)
	var out []uint64
	for _, r := range rs {
		for i := r.GetStart(); i < r.GetEnd(); i++ {
			out = append(out, i)
		}
	}
	return out
}
