package fetch

import (
	"context"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	msmux "github.com/multiformats/go-multistream"

	pb "github.com/expertd/expertd/proto"
)

// negotiationTimeout bounds the wait for the provider's answer to the
// protocol proposal when a stream is closed before any reply was read.
const negotiationTimeout = 10 * time.Second

// openStream opens a fetch stream to p. host.Connect and host.NewStream
// wait for identify to finish on a new connection, a round trip a fetch
// does not need: it proposes its protocol optimistically anyway. So this
// dials through the network (host.Connect only when that fails or no
// address of p is known: it looks p up), opens a stream and selects ProtocolID lazily, the
// proposal travelling with the request; a provider without the protocol
// fails the first read.
//
// A provider reached only through a relay (NAT traversal, see relay.go):
// the stream waits up to directWait for a direct connection (a hole
// punch), then takes the relayed one, limited or not.
func openStream(ctx context.Context, h host.Host, p peer.ID, directWait time.Duration) (network.Stream, error) {
	err := network.ErrNoConn
	if h.Network().Connectedness(p) != network.NotConnected || len(h.Peerstore().Addrs(p)) > 0 {
		_, err = h.Network().DialPeer(ctx, p)
	}
	if err != nil && ctx.Err() == nil { // no address known, or stale ones: the host looks p up
		err = h.Connect(network.WithAllowLimitedConn(ctx, "fetch"), peer.AddrInfo{ID: p})
	}
	if err != nil {
		if ctx.Err() == nil {
			err = unreachable(h, p, err)
		}
		return nil, err
	}
	waitDirect(ctx, h, p, directWait)
	s, err := h.Network().NewStream(network.WithAllowLimitedConn(network.WithNoDial(ctx, "connected"), "fetch"), p)
	if err != nil {
		return nil, err
	}
	if err := s.SetProtocol(ProtocolID); err != nil {
		_ = s.Reset()
		return nil, err
	}
	return &lazyStream{Stream: s, rw: msmux.NewMSSelect(s, ProtocolID)}, nil
}

// lazyStream is a stream whose protocol selection completes with its
// first read (as go-libp2p's host wraps the streams it opens).
type lazyStream struct {
	network.Stream
	rw io.ReadWriteCloser
}

func (s *lazyStream) Read(b []byte) (int, error)  { return s.rw.Read(b) }
func (s *lazyStream) Write(b []byte) (int, error) { return s.rw.Write(b) }

func (s *lazyStream) Close() error {
	// Closing reads the protocol answer if nothing did: do not wait forever.
	_ = s.Stream.SetReadDeadline(time.Now().Add(negotiationTimeout))
	return s.rw.Close()
}

func (s *lazyStream) CloseWrite() error {
	// The proposal may still sit in the lazy writer's buffer.
	if f, ok := s.rw.(interface{ Flush() error }); ok {
		_ = f.Flush()
	}
	return s.Stream.CloseWrite()
}

// writeRequest writes req to s, a stream openStream opened, and closes
// its write side, unless req is a watch, which lasts as long as that side
// is open. On failure it resets s.
func writeRequest(s network.Stream, req *pb.FetchRequest) error {
	if _, err := pb.WriteFrame(s, req, nil); err != nil {
		_ = s.Reset()
		return err
	}
	if req.GetWatch() {
		return nil
	}
	if err := s.CloseWrite(); err != nil {
		_ = s.Reset()
		return err
	}
	return nil
}
