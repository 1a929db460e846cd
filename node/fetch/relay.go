package fetch

// Fetching through circuit relays (NAT traversal, issue 20). Kept apart
// from the fetcher's scheduling: openStream waits briefly for a direct
// connection to a provider it reaches only through a relay, then opens the
// stream on the relayed connection (a relay the user configured is
// trusted to carry data); the header check refuses a request the relay's
// limits cannot carry, with an error saying so; and a request running on a
// relayed connection is cut when a direct one appears (a hole punch that
// succeeded), its leaves asked again over the direct connection.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/expertd/expertd/node/unixfs"
	pb "github.com/expertd/expertd/proto"
)

// DefaultDirectWait is Options.DirectWait's default. A provider behind NAT
// starts a hole punch (DCUtR) as soon as a relayed connection comes in; one
// that works takes a few round trips (0.2 s in deploy/natlab).
const DefaultDirectWait = 3 * time.Second

var (
	// ErrRelayLimit means a provider is reachable only through a relay
	// whose limits cannot carry what the fetch asks of it (RelayLimitError).
	ErrRelayLimit = errors.New("fetch: relay limit")
	// ErrUnreachable means a provider has no address this node can dial.
	ErrUnreachable = errors.New("fetch: provider unreachable")
	// errMoved ends a request on a relayed connection when a direct one
	// to its provider appears: its leaves are asked again over that one.
	errMoved = errors.New("fetch: moved to a direct connection")
)

// RelayLimitError says which relay stands between this node and a
// provider, and what it lets through.
type RelayLimitError struct {
	Provider, Relay peer.ID
	LimitBytes      uint64        // each way per relayed connection; 0: none
	LimitDuration   time.Duration // per relayed connection; 0: none
	Need            uint64        // bytes the request needs, framing included
	Expired         bool          // the connection reached LimitDuration
}

func (e *RelayLimitError) Error() string {
	var lim []string
	if e.LimitBytes > 0 && e.LimitBytes < 1<<62 {
		lim = append(lim, size(e.LimitBytes))
	}
	if e.LimitDuration > 0 && e.LimitDuration < 1<<31*time.Second {
		lim = append(lim, e.LimitDuration.String())
	}
	what := fmt.Sprintf("which limits a relayed connection to %s", strings.Join(lim, " and "))
	switch {
	case e.Expired:
		what += ", and closed it"
	case e.Need > 0:
		what += fmt.Sprintf(": the fetch needs %s", size(e.Need))
	}
	return fmt.Sprintf("provider %s is reachable only through relay %s, %s; run a relay with p2p.relay_service "+
		"(p2p.relay_service.max_circuit_bytes above the largest expert) or forward a port to the provider and set its p2p.announce",
		e.Provider, e.Relay, what)
}

func (e *RelayLimitError) Unwrap() error { return ErrRelayLimit }

func size(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// relayPath is a relayed connection a request runs on: nil for a direct one.
type relayPath struct {
	provider, relay peer.ID
	limitBytes      uint64
	limitDuration   time.Duration
	opened          time.Time
}

// relayed reports whether c goes through a relay.
func relayed(c network.Conn) bool {
	_, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// pathOf returns the relayed path of c, nil when c is direct.
func pathOf(c network.Conn) *relayPath {
	if !relayed(c) {
		return nil
	}
	p := &relayPath{provider: c.RemotePeer(), opened: c.Stat().Opened}
	ma.ForEach(c.RemoteMultiaddr(), func(comp ma.Component) bool {
		if comp.Protocol().Code == ma.P_CIRCUIT {
			return false
		}
		if comp.Protocol().Code == ma.P_P2P {
			p.relay, _ = peer.IDFromBytes(comp.RawValue())
		}
		return true
	})
	st := c.Stat()
	p.limitBytes, _ = st.Extra[client.StatLimitData].(uint64)
	p.limitDuration, _ = st.Extra[client.StatLimitDuration].(time.Duration)
	return p
}

// check refuses the leaves want of l when the relay's limits cannot carry
// them. The relay counts the relayed connection's bytes: leaves, fetch
// frames, and the encryption and stream framing under them (well under
// 1/64), plus the header and the connection's own start (the margin).
func (p *relayPath) check(l *unixfs.Layout, want []uint64) error {
	if p == nil {
		return nil
	}
	if p.limitDuration > 0 && time.Since(p.opened) >= p.limitDuration {
		return p.err(0, true)
	}
	if p.limitBytes == 0 {
		return nil
	}
	var need uint64
	for _, i := range want {
		need += l.Leaves[i].Size
	}
	need += need/64 + 64<<10
	if need > p.limitBytes {
		return p.err(need, false)
	}
	return nil
}

func (p *relayPath) err(need uint64, expired bool) *RelayLimitError {
	return &RelayLimitError{Provider: p.provider, Relay: p.relay, LimitBytes: p.limitBytes, LimitDuration: p.limitDuration, Need: need, Expired: expired}
}

// ended explains err, which ended a request on this relayed connection:
// the relay closing it at its time limit, or the relay involved.
func (p *relayPath) ended(err error) error {
	if p == nil || errors.As(err, new(*RelayLimitError)) {
		return err
	}
	if p.limitDuration > 0 && time.Since(p.opened) >= p.limitDuration-time.Second {
		return fmt.Errorf("%w: %w", p.err(0, true), err)
	}
	return fmt.Errorf("over relay %s: %w", p.relay, err)
}

// waitDirect waits, while every connection to p is relayed, until a direct
// one opens or the oldest relayed one is d old: a hole punch, if it
// works, comes early in a relayed connection's life.
func waitDirect(ctx context.Context, h host.Host, p peer.ID, d time.Duration) {
	direct := make(chan struct{}, 1)
	nb := &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if c.RemotePeer() == p && !relayed(c) {
			select {
			case direct <- struct{}{}:
			default:
			}
		}
	}}
	h.Network().Notify(nb)
	defer h.Network().StopNotify(nb)
	var oldest time.Time
	for _, c := range h.Network().ConnsToPeer(p) {
		if !relayed(c) {
			return
		}
		if o := c.Stat().Opened; oldest.IsZero() || o.Before(oldest) {
			oldest = o
		}
	}
	wait := time.Until(oldest.Add(d))
	if oldest.IsZero() || wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-direct:
	case <-t.C:
	case <-ctx.Done():
	}
}

// moveWhenDirect resets s, a stream on a relayed connection to p, when a
// direct connection to p opens; the returned stop ends the watch and
// reports whether it did.
func moveWhenDirect(h host.Host, p peer.ID, s network.Stream) (stop func() bool) {
	var moved atomic.Bool
	nb := &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if c.RemotePeer() == p && !relayed(c) && moved.CompareAndSwap(false, true) {
			go s.Reset() // not from within the swarm's notification
		}
	}}
	h.Network().Notify(nb)
	return func() bool {
		h.Network().StopNotify(nb)
		return moved.Load()
	}
}

// unreachable explains a failed dial to p when none of p's known
// addresses could work from another network: no public one, no relay one.
func unreachable(h host.Host, p peer.ID, err error) error {
	addrs := h.Peerstore().Addrs(p)
	for _, a := range addrs {
		if _, cerr := a.ValueForProtocol(ma.P_CIRCUIT); cerr == nil || manet.IsPublicAddr(a) {
			return err
		}
	}
	return fmt.Errorf("%w: %s has no public or relay address (known: %v); if it is behind NAT, it must forward a port "+
		"and set p2p.announce, or it and this node must use a relay (p2p.relays: a public node with p2p.relay_service): %w",
		ErrUnreachable, p, addrs, err)
}

// probeRelayLimit asks r's provider, on a stream of its own, for the
// header alone (a share of no leaf), and checks that the relay's byte
// limit holds what r asks for before r asks it. With the layout unknown,
// r's own header would come with its leaves right behind it, and a relay
// that cuts the connection at its limit can take the header with it: the
// fetch would fail with a reset instead of saying why.
func (f *Fetcher) probeRelayLimit(ctx context.Context, r streamReq, root cid.Cid) error {
	s, err := openStream(ctx, f.host, r.peer, f.opts.DirectWait)
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	probe := &pb.FetchRequest{Cid: root.Bytes(), Part: 0, Parts: math.MaxUint32, HeaderWhenBusy: true}
	if err := writeRequest(s, probe); err != nil {
		return err
	}
	_ = s.SetReadDeadline(time.Now().Add(f.opts.IdleTimeout))
	var buf []byte
	var frame pb.FetchFrame
	hdr, err := readHeader(bufio.NewReader(s), &frame, &buf, "the header")
	if err != nil {
		return err
	}
	layout, err := remoteLayout(ctx, root, hdr.GetSize(), hdr.GetLeaves(), hdr.GetNodes(), f.opts.MaxSize)
	if err != nil {
		return err
	}
	return r.path.check(layout, askedLeaves(r.msg, uint64(len(layout.Leaves))))
}
