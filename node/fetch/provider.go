package fetch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	gproto "google.golang.org/protobuf/proto"

	pb "github.com/expertd/expertd/proto"
)

// ProtocolID is the fetch protocol's stream protocol.
const ProtocolID protocol.ID = "/expertd/fetch/1.0.0"

// ProviderOptions limits what a provider serves.
type ProviderOptions struct {
	MaxSize        uint64        // largest expert served (default 4 GiB)
	StreamsPerPeer int           // upload slots one peer may hold (default 4)
	MaxStreams     int           // upload slots: streams served at once (default 8)
	WriteTimeout   time.Duration // per frame (default 30s)
	// RequestTimeout bounds the wait for a stream's request, which is read
	// before the stream may take a slot (default 5s).
	RequestTimeout time.Duration
	// When a peer asks while every slot is taken, a holder is choked for
	// it (see slots): one whose write moved nothing for StallTimeout
	// (default 3s), one read slower than SlowRate bytes/s (default 32 KiB/s),
	// or one that held its slot for Turn (default 10s) if its peer holds
	// more slots than the asking one. A choked stream gets the leaf under
	// way, then a BUSY frame, as long as its writes keep moving (a byte
	// every StallTimeout); else it is reset.
	StallTimeout time.Duration
	SlowRate     float64
	Turn         time.Duration
	// PeerRate caps the bytes per second served to one peer, over all its
	// streams (0: no cap).
	PeerRate int64
	// LoadedShare is how many leaves one request gets while other peers
	// are being served too (default 1; negative: no limit). Many peers
	// fetching one new expert then get different leaves from its first
	// holders and trade them among themselves (see offer): the smaller the
	// share, the sooner they trade and the less the publisher uploads
	// (deploy/bench/swarm measures both).
	LoadedShare int
	Logger      *slog.Logger
	// Served, if set, is called after each block sent, with its size.
	Served func(p peer.ID, bytes int)
	// Busy, if set, is called for each stream answered BUSY, with why
	// (one of the Busy* reasons).
	Busy func(reason string)
}

func (o *ProviderOptions) defaults() {
	if o.MaxSize == 0 {
		o.MaxSize = 4 << 30
	}
	if o.StreamsPerPeer == 0 {
		o.StreamsPerPeer = 4
	}
	if o.MaxStreams == 0 {
		o.MaxStreams = 8
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = 3 * time.Second
	}
	if o.SlowRate == 0 {
		o.SlowRate = 32 << 10
	}
	if o.Turn == 0 {
		o.Turn = 10 * time.Second
	}
	if o.LoadedShare == 0 {
		o.LoadedShare = 1
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// rateWindow is the write time over which a holder's rate is measured:
// eight meterTicks, short enough that a requester that slows down is seen
// within seconds. (A requester slower than its own stream window, not its
// link, moves in steps of half a window: yamux's 256 KiB one by 128 KiB.)
const rateWindow = 2 * time.Second

// slotConfig is the policy the options make: streams open per peer and in
// all are bounded at twice and four times the slots; a refused peer stays
// in line as long as the fetcher may wait before asking again, and a second.
func (o *ProviderOptions) slotConfig() slotConfig {
	return slotConfig{
		Slots: o.MaxStreams, PerPeer: o.StreamsPerPeer,
		OpenPerPeer: 2 * o.StreamsPerPeer, MaxOpen: max(4*o.MaxStreams, 2*o.StreamsPerPeer),
		Stall: o.StallTimeout, SlowRate: o.SlowRate, RateWindow: rateWindow, Turn: o.Turn,
		WaitFor: maxBusyWait + time.Second, MaxWaiting: 32 * o.MaxStreams,
	}
}

// Provider serves experts from a block store to peers.
type Provider struct {
	host   host.Host
	blocks Blocks
	opts   ProviderOptions

	throttle *throttle
	sent     *sentCounts
	haves    *haves // watch streams (have.go)
	held     *holdingsCache
	uplink   *uplink // streams with leaves to send, a leaf's time (uplink.go)
	flows    *flows  // leaves this node is receiving, served as they arrive (flow.go)

	mu      sync.Mutex // guards slots and streams
	slots   *slots
	streams map[streamID]*servedStream
}

// servedStream is a stream the provider serves, as the goroutine of
// another stream may choke it.
type servedStream struct {
	network.Stream
	id     streamID
	choked atomic.Bool
}

// NewProvider returns a provider; Serve registers it on the host.
func NewProvider(h host.Host, b Blocks, o ProviderOptions) *Provider {
	o.defaults()
	p := &Provider{
		host: h, blocks: b, opts: o, throttle: newThrottle(o.PeerRate), sent: newSentCounts(), haves: newHaves(), held: newHoldingsCache(), uplink: newUplink(),
		slots: newSlots(o.slotConfig()), streams: map[streamID]*servedStream{},
	}
	// A leaf that starts to flow here is one its watchers may ask for.
	p.flows = newFlows(p.haves.stored)
	return p
}

// Serve handles fetch streams until ctx is done.
func (p *Provider) Serve(ctx context.Context) error {
	p.host.SetStreamHandler(ProtocolID, func(s network.Stream) { p.handle(ctx, s) })
	<-ctx.Done()
	p.host.RemoveStreamHandler(ProtocolID)
	return nil
}

// open registers a new stream with the policy; a stream it evicts to make
// room is reset.
func (p *Provider) open(s *servedStream, remote peer.ID) bool {
	p.mu.Lock()
	id, evict, ok := p.slots.Open(remote, time.Now())
	old := p.streams[evict]
	delete(p.streams, evict)
	if ok {
		s.id = id
		p.streams[id] = s
	}
	p.mu.Unlock()
	if old != nil {
		_ = old.Reset()
	}
	return ok
}

func (p *Provider) closed(s *servedStream) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.slots.Close(s.id)
	delete(p.streams, s.id)
}

// ask asks the policy a slot for s to serve root, and chokes the holder
// it names.
func (p *Provider) ask(s *servedStream, root cid.Cid) bool {
	p.mu.Lock()
	ok, victim := p.slots.Ask(s.id, root, time.Now())
	v := p.streams[victim]
	p.mu.Unlock()
	if v != nil {
		// The victim's goroutine ends the stream after the frame it is
		// writing (sendFrame); the deadline wakes a write blocked on it.
		v.choked.Store(true)
		_ = v.SetWriteDeadline(time.Now())
	}
	return ok
}

// othersServed reports whether peers other than s's are being served the
// same expert (see slots.Others).
func (p *Provider) othersServed(s *servedStream) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.slots.Others(s.id, time.Now())
}

// metered tells the policy how a write to s moves.
func (p *Provider) metered(s *servedStream, event func(*slots, streamID, time.Time)) {
	p.mu.Lock()
	event(p.slots, s.id, time.Now())
	p.mu.Unlock()
}

func (p *Provider) handle(ctx context.Context, s network.Stream) {
	remote := s.Conn().RemotePeer()
	ss := &servedStream{Stream: s}
	if !p.open(ss, remote) {
		err := p.refuseBusy(ss, BusyStreams, 0, "too many fetch streams open")
		p.opts.Logger.Debug("fetch: stream refused", "peer", remote, "err", err)
		return
	}
	defer p.closed(ss)
	err := p.serve(ctx, ss, remote)
	if err == nil {
		_ = s.Close()
		return
	}
	p.opts.Logger.Debug("fetch: serve failed", "peer", remote, "err", err)
	var r *refusal
	switch {
	case errors.Is(err, errFlowDead):
		p.busyBecause(BusyGivenUp)
		_ = s.ResetWithError(streamLeafGivenUp)
	case !errors.As(err, &r) || r.unsent != nil:
		_ = s.Reset()
	}
}

// refusal is the error serve returns after it sent a FetchError frame and
// closed the stream (unsent: the frame could not be written, so the
// stream must be reset).
type refusal struct {
	code   pb.FetchError_Code
	msg    string
	unsent error
}

func (r *refusal) Error() string { return fmt.Sprintf("%s: %s", r.code, r.msg) }

// refuse ends s with a FetchError frame, written within StallTimeout: a
// requester that reads nothing gets its stream reset.
func (p *Provider) refuse(s *servedStream, code pb.FetchError_Code, format string, args ...any) error {
	return p.refuseAfter(s, code, 0, format, args...)
}

// refuseAfter is refuse with a hint of when to ask again (BUSY).
func (p *Provider) refuseAfter(s *servedStream, code pb.FetchError_Code, retry time.Duration, format string, args ...any) error {
	r := &refusal{code: code, msg: fmt.Sprintf(format, args...)}
	_ = s.SetWriteDeadline(time.Now().Add(p.opts.StallTimeout))
	e := &pb.FetchError{Code: code, Message: r.msg, RetryMs: uint32(retry.Milliseconds())}
	if _, err := pb.WriteFrame(s, &pb.FetchFrame{Body: &pb.FetchFrame_Error{Error: e}}, nil); err != nil {
		r.unsent = err
		_ = s.Reset()
		return r
	}
	_ = s.Close()
	return r
}

func (p *Provider) serve(ctx context.Context, s *servedStream, remote peer.ID) error {
	// The request first, within RequestTimeout: a stream that sends none
	// never takes a slot.
	_ = s.SetReadDeadline(time.Now().Add(p.opts.RequestTimeout))
	var req pb.FetchRequest
	var buf []byte
	if err := readMsg(bufio.NewReaderSize(s, 4096), &req, maxRequestFrame, &buf); err != nil {
		return p.refuse(s, pb.FetchError_BAD_REQUEST, "%v", err)
	}
	root, err := cid.Cast(req.GetCid())
	if err != nil {
		return p.refuse(s, pb.FetchError_BAD_REQUEST, "cid: %v", err)
	}
	layout, err := localLayout(ctx, p.blocks, root, p.opts.MaxSize)
	if err != nil {
		return p.refuse(s, pb.FetchError_NOT_FOUND, "%s: %v", root, err)
	}
	if req.GetWatch() {
		return p.watch(ctx, s, remote, layout)
	}
	n := uint64(len(layout.Leaves))
	asked, err := wanted(&req, n)
	if err != nil {
		return p.refuse(s, pb.FetchError_BAD_REQUEST, "%v", err)
	}
	if !p.ask(s, root) {
		return p.busy(s, &req, layout, BusySlots, "all %d upload slots taken", p.opts.MaxStreams)
	}
	loaded := p.othersServed(s)
	queued, ok := p.uplink.queue(ctx, loaded)
	if !ok {
		return p.busy(s, &req, layout, BusyUplink, "uplink busy: %d streams wait for it", uplinkBacklog)
	}
	defer queued()
	ranges, have, err := p.offer(layout, asked, loaded)
	if err != nil {
		return p.refuse(s, pb.FetchError_INTERNAL, "%v", err)
	}
	hdr := &pb.FetchHeader{Size: layout.Size, Leaves: n, Ranges: ranges, Have: have}
	if !req.GetSkipNodes() {
		for _, b := range layout.Nodes {
			hdr.Nodes = append(hdr.Nodes, b.Data)
		}
	}
	if req.GetOutboard() {
		if hdr.Outboard, err = p.flows.outboard(layout, p.blocks, have == nil); err != nil {
			return p.refuse(s, pb.FetchError_INTERNAL, "outboard: %v", err)
		}
	}
	if buf, err = p.sendFrame(s, &pb.FetchFrame{Body: &pb.FetchFrame_Header{Header: hdr}}, buf); err != nil {
		return err
	}
	lim := p.throttle.open(remote)
	defer p.throttle.close(remote)
	frame := &pb.FetchFrame{}
	blk := &pb.Block{}
	frame.Body = &pb.FetchFrame_Block{Block: blk}
	sent := 0
	for _, r := range ranges {
		for i := r.GetStart(); i < r.GetEnd(); i++ {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A stream offered many leaves as nobody else asked gives way
			// once others are served too, as if it had asked then.
			if share := p.opts.LoadedShare; !loaded && share > 0 && sent >= share && p.othersServed(s) {
				return p.refuseBusy(s, BusyShare, p.uplink.retry(), "others are served: %d leaves each", share)
			}
			sent++
			if l := p.flows.leaf(root, i); l != nil {
				if err := p.sendFlowing(ctx, s, l, i, lim); err != nil {
					return err
				}
				if p.opts.Served != nil {
					p.opts.Served(remote, len(l.data))
				}
				continue
			}
			data, err := p.blocks.GetBlock(layout.Leaves[i].Cid)
			if err != nil && have != nil {
				// Offered as under way here, and given up since.
				return p.refuseBusy(s, BusyGivenUp, 0, "leaf %d given up here", i)
			}
			if err != nil {
				return p.refuse(s, pb.FetchError_INTERNAL, "leaf %d: %v", i, err)
			}
			if err := wait(ctx, lim, len(data)); err != nil {
				return err
			}
			blk.Index, blk.Data = i, data
			began := time.Now()
			if buf, err = p.sendFrame(s, frame, buf); err != nil {
				return err
			}
			p.uplink.wrote(time.Since(began))
			if p.opts.Served != nil {
				p.opts.Served(remote, len(data))
			}
		}
	}
	return nil
}

// meterTick is how often a write that has not finished wakes to tell the
// policy how far it got. A frame is written whole, not in pieces: pieces
// would leave a QUIC sender without data between them, and slow its start
// on a fresh connection (TestFetchSimnetVirtualTime shows it).
const meterTick = 250 * time.Millisecond

// sendFrame writes m to a stream holding a slot, within WriteTimeout. A
// stream choked meanwhile is refused instead, after the frame under way,
// which must keep moving: StallTimeout at most without a byte.
func (p *Provider) sendFrame(s *servedStream, m gproto.Message, buf []byte) ([]byte, error) {
	if s.choked.Load() {
		return buf, p.refuseBusy(s, BusyChoked, 0, "choked: upload slot given to a waiting peer")
	}
	p.metered(s, (*slots).Writing)
	buf, err := pb.WriteFrame(meteredWriter{p, s}, m, buf)
	p.metered(s, (*slots).Idle)
	return buf, err
}

// meteredWriter writes to a stream under a deadline that wakes it every
// meterTick (a net.Conn deadline is not fatal: yamux and quic-go return
// what they wrote before it), tells the policy of each byte moved and
// applies the time limits.
type meteredWriter struct {
	p *Provider
	s *servedStream
}

func (w meteredWriter) Write(b []byte) (int, error) {
	start := time.Now()
	moved := start
	n := 0
	for {
		limit := start.Add(w.p.opts.WriteTimeout)
		if w.s.choked.Load() {
			limit = earliest(limit, moved.Add(w.p.opts.StallTimeout))
		}
		now := time.Now()
		if !now.Before(limit) {
			return n, fmt.Errorf("write: %w", os.ErrDeadlineExceeded)
		}
		_ = w.s.SetWriteDeadline(earliest(limit, now.Add(meterTick)))
		k, err := w.s.Write(b[n:])
		n += k
		if k > 0 {
			moved = time.Now()
			w.p.metered(w.s, func(sl *slots, id streamID, now time.Time) { sl.Wrote(id, k, now) })
		}
		var ne net.Error
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			return n, err
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// wanted resolves a request's leaf selection against n leaves.
func wanted(req *pb.FetchRequest, n uint64) ([]*pb.LeafRange, error) {
	if len(req.GetRanges()) > 0 {
		if len(req.GetRanges()) > 4096 {
			return nil, errors.New("too many ranges")
		}
		prev := uint64(0)
		for _, r := range req.GetRanges() {
			if r.GetStart() < prev || r.GetStart() >= r.GetEnd() || r.GetEnd() > n {
				return nil, fmt.Errorf("range [%d, %d) invalid for %d leaves", r.GetStart(), r.GetEnd(), n)
			}
			prev = r.GetEnd()
		}
		return req.GetRanges(), nil
	}
	if req.GetParts() == 0 {
		if n == 0 {
			return nil, nil
		}
		return []*pb.LeafRange{{Start: 0, End: n}}, nil
	}
	if req.GetPart() >= req.GetParts() {
		return nil, fmt.Errorf("part %d of %d", req.GetPart(), req.GetParts())
	}
	start, end := share(n, req.GetPart(), req.GetParts())
	if start == end {
		return nil, nil
	}
	return []*pb.LeafRange{{Start: start, End: end}}, nil
}
