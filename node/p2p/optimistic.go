package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/p2p/transport/tcpreuse"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/multiformats/go-varint"
)

// Errors of a TCP dial whose security protocol was proposed optimistically
// (see TCP).
var (
	// ErrSecurityRefused: the peer speaks multistream-select but did not
	// accept the protocol (Noise).
	ErrSecurityRefused = errors.New("peer refused the proposed security protocol")
	// ErrNotMultistream: the peer's answer is not multistream-select's
	// (not a libp2p peer).
	ErrNotMultistream = errors.New("peer does not speak multistream-select")
)

// mssHeader is multistream-select 1.0's opening message as it goes on the
// wire: a uvarint length, the protocol ID and a newline.
var mssHeader = []byte("\x13/multistream/1.0.0\n")

// TCP is go-libp2p's TCP transport (with opts) with one round trip less on
// every outbound connection, and Noise proposed before TLS.
//
// go-libp2p negotiates the security protocol of a TCP connection with
// multistream-select and waits for the answer before it starts the
// handshake: TCP, negotiation, then Noise cost three round trips before a
// first request can leave, against HTTP's one. With TCP the dialer does
// not wait: it proposes Noise and sends Noise's first message in the same
// flight, as go-libp2p already does for a stream's protocol. A peer that
// accepts answers with exactly the proposal; anything else fails the dial
// with ErrSecurityRefused (or, from a peer that does not speak
// multistream-select at all, ErrNotMultistream), since the handshake bytes
// already sent cannot be taken back. Every libp2p implementation speaks
// Noise (go-libp2p, rust-libp2p, js-libp2p, kubo), so this only loses TCP
// dials to peers that run TLS alone (QUIC and WebSocket dials are
// unchanged). Inbound connections are unchanged, and TLS is still accepted
// from peers that propose it. What it saves on a fresh fetch is measured
// in docs/bench/latency.md.
func TCP(opts ...tcp.Option) libp2p.Option {
	topts := make([]any, len(opts))
	for i, o := range opts {
		topts[i] = o
	}
	return libp2p.ChainOptions(
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(tls.ID, tls.New),
		libp2p.Transport(newOptimisticTCP, topts...),
	)
}

// newOptimisticTCP is tcp.NewTCPTransport with an optimisticUpgrader; its
// parameters are filled by go-libp2p's constructor injection.
func newOptimisticTCP(up transport.Upgrader, rcmgr network.ResourceManager, shared *tcpreuse.ConnMgr, opts ...tcp.Option) (*tcp.TcpTransport, error) {
	return tcp.NewTCPTransport(optimisticUpgrader{up}, rcmgr, shared, opts...)
}

// optimisticUpgrader hands outbound connections to the upgrader wrapped in
// an optimisticConn that answers for Noise. Simultaneous opens (hole
// punching), whose roles are settled by the upgrader, are left alone.
type optimisticUpgrader struct{ transport.Upgrader }

var _ transport.Upgrader = optimisticUpgrader{}

func (u optimisticUpgrader) Upgrade(ctx context.Context, t transport.Transport, c manet.Conn, dir network.Direction, p peer.ID, scope network.ConnManagementScope) (transport.CapableConn, error) {
	if simOpen, _, _ := network.GetSimultaneousConnect(ctx); dir == network.DirOutbound && !simOpen {
		c = newOptimisticConn(c, noise.ID)
	}
	return u.Upgrader.Upgrade(ctx, t, c, dir, p, scope)
}

// optimisticConn answers a multistream-select proposal of one protocol on
// the peer's behalf.
//
// When the first Write proposes that protocol (the multistream header and
// the protocol ID, as multistream.SelectProtoOrFail writes them), the
// reader is handed the answer of a peer that accepts, which is the proposal
// itself, at once; the selector then goes on to its handshake without
// waiting. The peer's real answer is read off the wire before any later
// byte and must match, else reads fail with ErrSecurityRefused or
// ErrNotMultistream. Any other first Write (a PSK nonce, another proposal)
// makes the conn a plain pass-through.
//
// Reads wait for the first Write (the selector writes at once) or Close;
// read deadlines apply from then on.
type optimisticConn struct {
	manet.Conn
	proto string // the protocol answered for

	proposed  chan struct{} // closed by the first Write
	closed    chan struct{} // closed by Close
	once      sync.Once
	closeOnce sync.Once

	// Set before proposed is closed; used only by the reader after.
	answer  []byte // the accepting answer still to hand to the reader
	check   []byte // the same answer still to read off the wire and compare
	checked int    // bytes of the answer read and found as expected
	refused error  // the answer did not match: every Read fails with it
}

func newOptimisticConn(c manet.Conn, proto string) *optimisticConn {
	return &optimisticConn{Conn: c, proto: proto, proposed: make(chan struct{}), closed: make(chan struct{})}
}

func (c *optimisticConn) Write(b []byte) (int, error) {
	c.once.Do(func() {
		if proposes(b, c.proto) {
			c.answer = bytes.Clone(b)
			c.check = bytes.Clone(b)
		}
		close(c.proposed)
	})
	return c.Conn.Write(b)
}

func (c *optimisticConn) Read(b []byte) (int, error) {
	select {
	case <-c.proposed:
	case <-c.closed:
		return 0, net.ErrClosed
	}
	if len(c.answer) > 0 {
		n := copy(b, c.answer)
		c.answer = c.answer[n:]
		return n, nil
	}
	if c.check != nil {
		if err := c.readAnswer(); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}

// readAnswer reads the peer's answer to the proposal and checks it is the
// proposal. It asks for no more than the answer's length, so nothing after
// it is consumed, and it can be resumed after a read error (a deadline).
func (c *optimisticConn) readAnswer() error {
	if c.refused != nil {
		return c.refused
	}
	var buf [64]byte
	for len(c.check) > 0 {
		n, err := c.Conn.Read(buf[:min(len(c.check), len(buf))])
		for i := range n {
			if buf[i] != c.check[i] {
				c.refused = c.refusal(c.checked+i, buf[i:n])
				return c.refused
			}
		}
		c.check, c.checked = c.check[n:], c.checked+n
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading the answer to %s: %w", c.proto, err)
		}
	}
	c.check = nil
	return nil
}

// refusal is the error for an answer that differs from the proposal at
// byte at, where got was read.
func (c *optimisticConn) refusal(at int, got []byte) error {
	if at < len(mssHeader) {
		return fmt.Errorf("%w (answered %q)", ErrNotMultistream, got)
	}
	return fmt.Errorf("%w: %s", ErrSecurityRefused, c.proto)
}

func (c *optimisticConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// proposes reports whether b is exactly the multistream header followed by
// the protocol ID proto.
func proposes(b []byte, proto string) bool {
	rest, ok := bytes.CutPrefix(b, mssHeader)
	if !ok {
		return false
	}
	n, k, err := varint.FromUvarint(rest)
	if err != nil || n != uint64(len(proto))+1 || len(rest)-k != int(n) {
		return false
	}
	return string(rest[k:len(rest)-1]) == proto && rest[len(rest)-1] == '\n'
}
