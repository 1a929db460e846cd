package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

// limits returns the resource manager's limits: go-libp2p's defaults
// scaled to MaxMemory and MaxFDs (so transient, per-peer, per-protocol and
// per-service limits stay proportionate), with the system scope set to
// exactly the Options' limits.
func limits(o *Options) rcmgr.ConcreteLimitConfig {
	scaling := rcmgr.DefaultLimits // a copy; its maps are nil until filled below
	libp2p.SetDefaultServiceLimits(&scaling)
	scaled := scaling.Scale(o.MaxMemory, o.MaxFDs)
	def := scaled.ToPartialLimitConfig()
	sys := rcmgr.ResourceLimits{
		Memory:          rcmgr.LimitVal64(o.MaxMemory),
		FD:              rcmgr.LimitVal(o.MaxFDs),
		Conns:           rcmgr.LimitVal(o.MaxConns),
		ConnsInbound:    min(def.System.ConnsInbound, rcmgr.LimitVal(o.MaxConns)),
		ConnsOutbound:   rcmgr.LimitVal(o.MaxConns),
		Streams:         rcmgr.LimitVal(o.MaxStreams),
		StreamsInbound:  min(def.System.StreamsInbound, rcmgr.LimitVal(o.MaxStreams)),
		StreamsOutbound: rcmgr.LimitVal(o.MaxStreams),
	}
	partial := rcmgr.PartialLimitConfig{
		System:    sys,
		Transient: capped(def.Transient, sys), // connections not yet attached to a peer
	}
	if o.RelayService != nil {
		partial.Service = map[string]rcmgr.ResourceLimits{relayv2.ServiceName: o.RelayService.serviceLimits()}
	}
	return partial.Build(scaled)
}

// capped returns l with no limit above the same limit of c. Both hold
// concrete positive numbers here (Scale's output and the Options), never
// the special Unlimited or BlockAll values, so min is right.
func capped(l, c rcmgr.ResourceLimits) rcmgr.ResourceLimits {
	return rcmgr.ResourceLimits{
		Streams:         min(l.Streams, c.Streams),
		StreamsInbound:  min(l.StreamsInbound, c.StreamsInbound),
		StreamsOutbound: min(l.StreamsOutbound, c.StreamsOutbound),
		Conns:           min(l.Conns, c.Conns),
		ConnsInbound:    min(l.ConnsInbound, c.ConnsInbound),
		ConnsOutbound:   min(l.ConnsOutbound, c.ConnsOutbound),
		FD:              min(l.FD, c.FD),
		Memory:          min(l.Memory, c.Memory),
	}
}

// newResourceManager builds a resource manager with fixed limits.
func newResourceManager(o *Options) (network.ResourceManager, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits(o)))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return rm, nil
}

// newConnManager builds the connection manager: above ConnHigh connections
// it closes the least useful ones down to ConnLow, sparing those younger
// than ConnGrace and those protected (connmgr.Protect).
func newConnManager(o *Options) (*connmgr.BasicConnMgr, error) {
	cm, err := connmgr.NewConnManager(o.ConnLow, o.ConnHigh, connmgr.WithGracePeriod(o.ConnGrace))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	return cm, nil
}
