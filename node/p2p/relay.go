package p2p

import (
	"fmt"
	"math"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// RelayService configures the circuit relay v2 service a node runs for
// peers behind NAT (Options.RelayService): they reserve a slot on it and
// are then reachable at /<relay addr>/p2p/<relay id>/p2p-circuit/p2p/<id>.
// go-libp2p's defaults (128 KiB and 2 minutes a relayed connection) are
// sized for signalling, not for experts: a fetch through such a relay
// cannot finish, so expertd's defaults let an expert through.
type RelayService struct {
	// MaxCircuitBytes is what one relayed connection may carry in each
	// direction before the relay closes it; 0: no limit.
	MaxCircuitBytes int64
	// MaxCircuitDuration is how long one relayed connection may last; 0:
	// no limit. With both limits 0 relayed connections are unlimited:
	// peers use them as direct ones, for every protocol.
	MaxCircuitDuration time.Duration
	// MaxCircuits bounds the relayed connections open at once, in all.
	MaxCircuits int
	// MaxCircuitsPerPeer bounds those to or from one peer.
	MaxCircuitsPerPeer int
	// MaxReservations bounds the peers holding a slot; per IP address,
	// MaxReservationsPerIP.
	MaxReservations      int
	MaxReservationsPerIP int
	// ReservationTTL is how long a slot lasts unless renewed (peers renew
	// it well before).
	ReservationTTL time.Duration
}

// relayBufferSize is what the relay copies at once, in each direction of a
// relayed connection: go-libp2p's 2 KiB makes a relayed expert crawl.
const relayBufferSize = 32 << 10

// MinReservationTTL is the shortest RelayService.ReservationTTL: go-libp2p
// clients renew a reservation from two minutes before it expires.
const MinReservationTTL = 5 * time.Minute

func (r *RelayService) validate() error {
	switch {
	case r.MaxCircuitBytes < 0 || r.MaxCircuitDuration < 0:
		return fmt.Errorf("relay service: circuit limits %d bytes, %v: want >= 0 (0: none)", r.MaxCircuitBytes, r.MaxCircuitDuration)
	case r.MaxCircuitDuration > 0 && r.MaxCircuitDuration < time.Second:
		return fmt.Errorf("relay service: circuit duration %v: want 0 (none) or at least 1s", r.MaxCircuitDuration)
	case r.MaxCircuits < 1 || r.MaxCircuitsPerPeer < 1 || r.MaxReservations < 1 || r.MaxReservationsPerIP < 1:
		return fmt.Errorf("relay service: circuits %d, per peer %d, reservations %d, per IP %d: want each >= 1",
			r.MaxCircuits, r.MaxCircuitsPerPeer, r.MaxReservations, r.MaxReservationsPerIP)
	case r.ReservationTTL < MinReservationTTL:
		return fmt.Errorf("relay service: reservation TTL %v: want at least %v", r.ReservationTTL, MinReservationTTL)
	}
	return nil
}

// limit is the per-circuit limit the relay announces and enforces; nil
// when unlimited. A limit of 0 on one side only is go-libp2p's "nothing
// passes", so it becomes the largest value the protocol can carry.
func (r *RelayService) limit() *relayv2.RelayLimit {
	if r.MaxCircuitBytes == 0 && r.MaxCircuitDuration == 0 {
		return nil
	}
	l := &relayv2.RelayLimit{Data: r.MaxCircuitBytes, Duration: r.MaxCircuitDuration}
	if l.Data == 0 {
		l.Data = math.MaxInt64
	}
	if l.Duration == 0 {
		l.Duration = math.MaxUint32 * time.Second // the limit message's field is uint32 seconds
	}
	return l
}

// serviceLimits bounds the relay service's scope in the resource manager:
// each relayed connection holds two streams (the hop stream from its
// source, the stop stream to its destination) and two copy buffers; the
// headroom is for reservation and connection handshakes under way.
func (r *RelayService) serviceLimits() rcmgr.ResourceLimits {
	const handshakes = 16
	return rcmgr.ResourceLimits{
		StreamsInbound:  rcmgr.LimitVal(r.MaxCircuits + handshakes),
		StreamsOutbound: rcmgr.LimitVal(r.MaxCircuits),
		Streams:         rcmgr.LimitVal(2*r.MaxCircuits + handshakes),
		Memory:          rcmgr.LimitVal64(int64(r.MaxCircuits)*2*relayBufferSize + 1<<20),
	}
}

// startRelay runs the relay service on h. It does not wait for AutoNAT to
// find the node public (as go-libp2p's EnableRelayService does): the user
// asked for it, and a node AutoNAT has not probed yet is still a relay
// its peers can use. With private addresses allowed (a LAN swarm), the
// relay's reservations also hand out its private addresses.
func startRelay(h host.Host, r *RelayService, allowPrivate bool) (*relayv2.Relay, error) {
	res := relayv2.DefaultResources()
	res.Limit = r.limit()
	res.ReservationTTL = r.ReservationTTL
	res.MaxReservations = r.MaxReservations
	res.MaxReservationsPerIP = r.MaxReservationsPerIP
	res.MaxCircuits = r.MaxCircuitsPerPeer
	res.BufferSize = relayBufferSize
	filter := manet.IsPublicAddr
	if allowPrivate {
		filter = func(a ma.Multiaddr) bool { return !manet.IsIPUnspecified(a) }
	}
	rel, err := relayv2.New(h, relayv2.WithResources(res), relayv2.WithReservationAddressFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("relay service: %w", err)
	}
	return rel, nil
}
