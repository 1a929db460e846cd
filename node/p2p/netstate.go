package p2p

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/expertd/expertd/internal/slogutil"
)

// ConnKind is how a connection reaches its peer.
type ConnKind string

// Connection kinds.
const (
	ConnDirect      ConnKind = "direct"       // dialed or accepted
	ConnRelayed     ConnKind = "relayed"      // through a circuit relay
	ConnHolePunched ConnKind = "hole-punched" // direct, opened by a hole punch (DCUtR)
)

// ConnInfo describes one open connection.
type ConnInfo struct {
	Addr   ma.Multiaddr // the peer's end
	Kind   ConnKind
	Opened time.Time
	// Relay is the relay of a relayed connection, and LimitBytes and
	// LimitDuration what it lets through (each way) and for how long;
	// zero: no limit.
	Relay         peer.ID
	LimitBytes    uint64
	LimitDuration time.Duration
}

// Reservation is a slot this node holds on a relay: peers reach it at
// Addrs.
type Reservation struct {
	Relay peer.ID
	Addrs []ma.Multiaddr
}

// Reachability values, as AutoNAT finds them.
const (
	ReachPublic  = "public"
	ReachPrivate = "private"
	ReachUnknown = "unknown"
)

// netState follows what the status page and `expertd peers` show of the
// network: the node's reachability (AutoNAT), its relay reservations
// (AutoRelay) and which direct connections a hole punch opened.
type netState struct {
	log *slog.Logger

	mu        sync.Mutex
	reach     network.Reachability
	relayAddr []ma.Multiaddr
	punched   map[string]bool // connection IDs

	sub  event.Subscription
	done chan struct{}
}

func newNetState(log *slog.Logger) *netState {
	return &netState{log: log, punched: map[string]bool{}, done: make(chan struct{})}
}

// start follows h's events until close.
func (s *netState) start(h host.Host) error {
	sub, err := h.EventBus().Subscribe([]any{new(event.EvtLocalReachabilityChanged), new(event.EvtAutoRelayAddrsUpdated)},
		eventbus.Name("expertd netstate"))
	if err != nil {
		return err
	}
	s.sub = sub
	h.Network().Notify(&network.NotifyBundle{DisconnectedF: func(_ network.Network, c network.Conn) {
		s.mu.Lock()
		delete(s.punched, c.ID())
		s.mu.Unlock()
	}})
	go func() {
		defer close(s.done)
		for e := range sub.Out() {
			s.mu.Lock()
			switch e := e.(type) {
			case event.EvtLocalReachabilityChanged:
				s.reach = e.Reachability
				s.log.Info("reachability", "reachability", reachString(e.Reachability))
			case event.EvtAutoRelayAddrsUpdated:
				s.relayAddr = slices.Clone(e.RelayAddrs)
				s.log.Info("relay reservations", "addrs", e.RelayAddrs)
			}
			s.mu.Unlock()
		}
	}()
	return nil
}

func (s *netState) close() {
	if s.sub != nil {
		s.sub.Close()
		<-s.done
	}
}

func reachString(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return ReachPublic
	case network.ReachabilityPrivate:
		return ReachPrivate
	}
	return ReachUnknown
}

// HolePunchFinished implements holepunch.MetricsTracer: it remembers the
// direct connection a successful hole punch opened.
func (s *netState) HolePunchFinished(side string, attempts int, _, _ []ma.Multiaddr, direct network.ConnMultiaddrs) {
	c, ok := direct.(network.Conn)
	if !ok || c == nil {
		return
	}
	s.mu.Lock()
	s.punched[c.ID()] = true
	s.mu.Unlock()
	s.log.Info("hole punch opened a direct connection", slogutil.Peer(c.RemotePeer()), "addr", c.RemoteMultiaddr(), "side", side, "attempts", attempts)
}

// DirectDialFinished implements holepunch.MetricsTracer.
func (s *netState) DirectDialFinished(bool) {}

// Trace implements holepunch.EventTracer: hole punches that failed are
// logged, as they explain why a peer stays relayed.
func (s *netState) Trace(e *holepunch.Event) {
	if end, ok := e.Evt.(*holepunch.EndHolePunchEvt); ok && !end.Success {
		s.log.Info("hole punch failed", slogutil.Peer(e.Remote), "took", end.EllapsedTime, slogutil.KeyErr, end.Error)
	}
}

var (
	_ holepunch.MetricsTracer = (*netState)(nil)
	_ holepunch.EventTracer   = (*netState)(nil)
)

// Reachability is whether AutoNAT finds this node reachable from the
// internet: ReachPublic, ReachPrivate or ReachUnknown.
func (n *Host) Reachability() string {
	n.net.mu.Lock()
	defer n.net.mu.Unlock()
	return reachString(n.net.reach)
}

// autorelayTag is the connection manager tag go-libp2p's AutoRelay
// protects a relay's connection with while it holds a slot there
// (p2p/host/autorelay/relay_finder.go; TestReservationsAndReachability
// notices if it changes).
const autorelayTag = "autorelay"

// Reservations lists the relays (of p2p.relays) this node holds a slot
// on, with the addresses peers reach it at through each. AutoRelay makes
// such addresses from the relay's public addresses only: a relay on a LAN
// holds slots but gives no address.
func (n *Host) Reservations() []Reservation {
	n.net.mu.Lock()
	defer n.net.mu.Unlock()
	var out []Reservation
	for _, r := range n.opts.Relays {
		if !n.ConnManager().IsProtected(r.ID, autorelayTag) {
			continue
		}
		rv := Reservation{Relay: r.ID}
		for _, a := range n.net.relayAddr {
			if relay, ok := relayOf(a); ok && relay == r.ID {
				rv.Addrs = append(rv.Addrs, a)
			}
		}
		out = append(out, rv)
	}
	return out
}

// RelayService reports whether this node serves as a relay.
func (n *Host) RelayService() bool { return n.relay != nil }

// Conns describes the open connections to p.
func (n *Host) Conns(p peer.ID) []ConnInfo {
	conns := n.Network().ConnsToPeer(p)
	out := make([]ConnInfo, 0, len(conns))
	n.net.mu.Lock()
	defer n.net.mu.Unlock()
	for _, c := range conns {
		st := c.Stat()
		ci := ConnInfo{Addr: c.RemoteMultiaddr(), Kind: ConnDirect, Opened: st.Opened}
		if relay, ok := relayOf(ci.Addr); ok {
			ci.Kind, ci.Relay = ConnRelayed, relay
			ci.LimitBytes, _ = st.Extra[client.StatLimitData].(uint64)
			ci.LimitDuration, _ = st.Extra[client.StatLimitDuration].(time.Duration)
		} else if n.net.punched[c.ID()] {
			ci.Kind = ConnHolePunched
		}
		out = append(out, ci)
	}
	return out
}

// relayOf returns the relay of a relayed address: the peer named before
// /p2p-circuit.
func relayOf(a ma.Multiaddr) (peer.ID, bool) {
	var relay peer.ID
	found := false
	ma.ForEach(a, func(c ma.Component) bool {
		switch c.Protocol().Code {
		case ma.P_P2P:
			relay, _ = peer.IDFromBytes(c.RawValue())
		case ma.P_CIRCUIT:
			found = true
			return false
		}
		return true
	})
	return relay, found && relay != ""
}
