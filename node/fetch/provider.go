package fetch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	pb "github.com/expertd/expertd/proto"
)

// ProtocolID is the fetch protocol's stream protocol.
const ProtocolID protocol.ID = "/expertd/fetch/1.0.0"

// ProviderOptions limits what a provider serves.
type ProviderOptions struct {
	MaxSize        uint64        // largest expert served (default 4 GiB)
	StreamsPerPeer int           // concurrent fetch streams per peer (default 4)
	MaxStreams     int           // concurrent fetch streams in all, upload slots (default 8)
	WriteTimeout   time.Duration // per frame (default 30s)
	// PeerRate caps the bytes per second served to one peer, over all its
	// streams (0: no cap).
	PeerRate int64
	// LoadedShare is how many leaves one request gets while other peers
	// are being served too (default 1; negative: no limit). Many peers
	// fetching one new expert then get different leaves from its first
	// holders and trade them among themselves (see offer). In the 10-node
	// simulation (deploy/bench/swarm) 1 had all hold a 4-leaf expert in
	// 7.5 s with the publisher sending 3.4-4.2x it; 4 took 13 s and 7x.
	LoadedShare int
	Logger      *slog.Logger
	// Served, if set, is called after each block sent, with its size.
	Served func(p peer.ID, bytes int)
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
	if o.LoadedShare == 0 {
		o.LoadedShare = 1
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Provider serves experts from a block store to peers.
type Provider struct {
	host   host.Host
	blocks Blocks
	opts   ProviderOptions

	throttle *throttle
	sent     *sentCounts

	mu      sync.Mutex
	perPeer map[peer.ID]int
	total   int
}

// NewProvider returns a provider; Serve registers it on the host.
func NewProvider(h host.Host, b Blocks, o ProviderOptions) *Provider {
	o.defaults()
	return &Provider{host: h, blocks: b, opts: o, perPeer: map[peer.ID]int{}, throttle: newThrottle(o.PeerRate), sent: newSentCounts()}
}

// Serve handles fetch streams until ctx is done.
func (p *Provider) Serve(ctx context.Context) error {
	p.host.SetStreamHandler(ProtocolID, func(s network.Stream) { p.handle(ctx, s) })
	<-ctx.Done()
	p.host.RemoveStreamHandler(ProtocolID)
	return nil
}

func (p *Provider) acquire(id peer.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.perPeer[id] >= p.opts.StreamsPerPeer || p.total >= p.opts.MaxStreams {
		return false
	}
	p.perPeer[id]++
	p.total++
	return true
}

// othersServed reports whether streams of peers other than id are being
// served.
func (p *Provider) othersServed(id peer.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total > p.perPeer[id]
}

func (p *Provider) release(id peer.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total--
	if p.perPeer[id]--; p.perPeer[id] <= 0 {
		delete(p.perPeer, id)
	}
}

func (p *Provider) handle(ctx context.Context, s network.Stream) {
	remote := s.Conn().RemotePeer()
	if err := p.serve(ctx, s, remote); err != nil {
		p.opts.Logger.Debug("fetch: serve failed", "peer", remote, "err", err)
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

func (p *Provider) serve(ctx context.Context, s network.Stream, remote peer.ID) error {
	var buf []byte
	fail := func(code pb.FetchError_Code, format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		_, _ = pb.WriteFrame(s, &pb.FetchFrame{Body: &pb.FetchFrame_Error{Error: &pb.FetchError{Code: code, Message: msg}}}, buf)
		_ = s.CloseWrite()
		return fmt.Errorf("%s: %s", code, msg)
	}
	if !p.acquire(remote) {
		return fail(pb.FetchError_BUSY, "too many concurrent fetches")
	}
	defer p.release(remote)

	_ = s.SetReadDeadline(time.Now().Add(p.opts.WriteTimeout))
	var req pb.FetchRequest
	if err := readMsg(bufio.NewReaderSize(s, 4096), &req, maxRequestFrame, &buf); err != nil {
		return fail(pb.FetchError_BAD_REQUEST, "%v", err)
	}
	root, err := cid.Cast(req.GetCid())
	if err != nil {
		return fail(pb.FetchError_BAD_REQUEST, "cid: %v", err)
	}
	layout, err := localLayout(ctx, p.blocks, root, p.opts.MaxSize)
	if err != nil {
		return fail(pb.FetchError_NOT_FOUND, "%s: %v", root, err)
	}
	n := uint64(len(layout.Leaves))
	asked, err := wanted(&req, n)
	if err != nil {
		return fail(pb.FetchError_BAD_REQUEST, "%v", err)
	}
	ranges, have, err := p.offer(layout, asked, p.othersServed(remote))
	if err != nil {
		return fail(pb.FetchError_INTERNAL, "%v", err)
	}
	hdr := &pb.FetchHeader{Size: layout.Size, Leaves: n, Ranges: ranges, Have: have}
	if !req.GetSkipNodes() {
		for _, b := range layout.Nodes {
			hdr.Nodes = append(hdr.Nodes, b.Data)
		}
	}
	_ = s.SetWriteDeadline(time.Now().Add(p.opts.WriteTimeout))
	if buf, err = pb.WriteFrame(s, &pb.FetchFrame{Body: &pb.FetchFrame_Header{Header: hdr}}, buf); err != nil {
		return err
	}
	lim := p.throttle.open(remote)
	defer p.throttle.close(remote)
	frame := &pb.FetchFrame{}
	blk := &pb.Block{}
	frame.Body = &pb.FetchFrame_Block{Block: blk}
	for _, r := range ranges {
		for i := r.GetStart(); i < r.GetEnd(); i++ {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			data, err := p.blocks.GetBlock(layout.Leaves[i].Cid)
			if err != nil {
				return fail(pb.FetchError_INTERNAL, "leaf %d: %v", i, err)
			}
			if err := wait(ctx, lim, len(data)); err != nil {
				return err
			}
			blk.Index, blk.Data = i, data
			_ = s.SetWriteDeadline(time.Now().Add(p.opts.WriteTimeout))
			if buf, err = pb.WriteFrame(s, frame, buf); err != nil {
				return err
			}
			if p.opts.Served != nil {
				p.opts.Served(remote, len(data))
			}
		}
	}
	return nil
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
