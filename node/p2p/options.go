package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// ProtocolPrefix prefixes expertd's DHT protocol: /expertd/kad/1.0.0. It
// keeps expertd's DHT apart from the IPFS one.
const ProtocolPrefix protocol.ID = "/expertd"

// DHTMode is how the node takes part in the DHT.
type DHTMode string

// DHT modes.
const (
	// DHTAuto answers queries unless AutoNAT finds the node unreachable
	// (kad-dht's ModeAutoServer: a LAN node, whose reachability stays
	// unknown, serves).
	DHTAuto DHTMode = "auto"
	// DHTServer always answers queries; for nodes known to be reachable.
	DHTServer DHTMode = "server"
	// DHTClient only queries; for nodes behind NAT or short-lived ones.
	DHTClient DHTMode = "client"
)

// Options configure NewHost; the daemon fills them from the configuration.
// Zero values of the limits take the defaults below.
type Options struct {
	Identity     crypto.PrivKey  // required; see LoadIdentity
	ListenAddrs  []ma.Multiaddr  // empty: dial out only
	Bootstrap    []peer.AddrInfo // connected to by Bootstrap; they also seed the DHT
	Relays       []peer.AddrInfo // static relays for AutoRelay; empty: AutoRelay off
	Announce     Announce        // addresses advertised instead of, beside or not among those observed
	RelayService *RelayService   // serve as a circuit relay v2; nil: off
	MDNS         bool            // discover and connect to peers on the LAN
	NATPortMap   bool            // UPnP / NAT-PMP port mapping
	HolePunching bool            // DCUtR hole punching
	AutoNAT      bool            // AutoNAT v2 client and server, AutoNAT v1 service
	DHTMode      DHTMode         // "" is DHTAuto
	// AllowPrivateAddrs keeps private, loopback and link-local addresses in
	// the DHT: peers reached at such addresses enter the routing table, and
	// such addresses are kept in provider and peer records. Needed for LAN
	// swarms and for several nodes on one machine (tests). When false the
	// DHT keeps only public addresses and peers reached at them, as IPFS's
	// public (WAN) DHT does.
	AllowPrivateAddrs bool

	// Extra libp2p options, applied last; empty for a daemon. A transport
	// given here is added to the host's own (go-libp2p's defaults, with
	// TCP's from TCP), so a second TCP or QUIC one fails: a simulation
	// puts QUIC on go-libp2p's simnet with libp2p.QUICReuse instead.
	Extra []libp2p.Option

	// PSK makes the swarm a private network: only peers holding the same
	// 32-byte key can connect. libp2p's PSK protects TCP only (QUIC has no
	// PSK support), so with a PSK the host runs on TCP alone and every listen
	// address must be TCP. See LoadPSK.
	PSK pnet.PSK
	// AllowPeers, when non-empty, is the only set of peers this host
	// connects to or accepts, enforced by a connection gater after the
	// security handshake (works for TCP and QUIC).
	AllowPeers     []peer.ID
	ProtocolPrefix protocol.ID // "" is ProtocolPrefix; tests may isolate swarms with another

	ConnLow, ConnHigh int           // connection manager watermarks (32, 96)
	ConnGrace         time.Duration // new connections are not trimmed for this long (20s)

	MaxMemory  int64 // resource manager: bytes for buffers (256 MiB)
	MaxFDs     int   // file descriptors (512)
	MaxConns   int   // connections (256)
	MaxStreams int   // streams (2048)

	Logger *slog.Logger // slog.Default() when nil
}

// Defaults of the zero Options fields.
const (
	DefaultConnLow    = 32
	DefaultConnHigh   = 96
	DefaultConnGrace  = 20 * time.Second
	DefaultMaxMemory  = 256 << 20
	DefaultMaxFDs     = 512
	DefaultMaxConns   = 256
	DefaultMaxStreams = 2048
)

func (o *Options) defaults() {
	if o.DHTMode == "" {
		o.DHTMode = DHTAuto
	}
	if o.ProtocolPrefix == "" {
		o.ProtocolPrefix = ProtocolPrefix
	}
	if o.ConnLow == 0 && o.ConnHigh == 0 {
		o.ConnLow, o.ConnHigh = DefaultConnLow, DefaultConnHigh
	}
	if o.ConnGrace == 0 {
		o.ConnGrace = DefaultConnGrace
	}
	if o.MaxMemory == 0 {
		o.MaxMemory = DefaultMaxMemory
	}
	if o.MaxFDs == 0 {
		o.MaxFDs = DefaultMaxFDs
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxStreams == 0 {
		o.MaxStreams = DefaultMaxStreams
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

func (o *Options) validate() error {
	switch {
	case o.Identity == nil:
		return errors.New("no identity key")
	case o.DHTMode != DHTAuto && o.DHTMode != DHTServer && o.DHTMode != DHTClient:
		return fmt.Errorf("DHT mode %q: want auto, server or client", o.DHTMode)
	case o.ConnLow < 0 || o.ConnHigh < 1 || o.ConnLow > o.ConnHigh:
		return fmt.Errorf("connection manager watermarks %d, %d: want 0 <= low <= high, high >= 1", o.ConnLow, o.ConnHigh)
	case o.ConnHigh > o.MaxConns:
		return fmt.Errorf("connection manager high watermark %d is above the connection limit %d", o.ConnHigh, o.MaxConns)
	case o.PSK != nil && len(o.PSK) != 32:
		return fmt.Errorf("private network key of %d bytes: want 32", len(o.PSK))
	case o.PSK != nil && !allTCP(o.ListenAddrs):
		return errors.New("a private network key protects TCP only (QUIC has no PSK support): listen on TCP addresses only")
	case o.MaxMemory < 1<<20 || o.MaxFDs < 1 || o.MaxConns < 1 || o.MaxStreams < 1:
		return fmt.Errorf("resource limits: memory %d, fds %d, conns %d, streams %d: want memory >= 1 MiB and the rest >= 1",
			o.MaxMemory, o.MaxFDs, o.MaxConns, o.MaxStreams)
	}
	if o.RelayService != nil {
		if err := o.RelayService.validate(); err != nil {
			return err
		}
	}
	if _, err := o.Announce.factory(); err != nil {
		return err
	}
	return nil
}

// ParseMultiaddrs parses listen addresses.
func ParseMultiaddrs(ss []string) ([]ma.Multiaddr, error) {
	out := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("multiaddr %q: %w", s, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// ParseAddrInfos parses peer addresses (each ending in /p2p/<peer id>),
// merging the addresses of the same peer.
func ParseAddrInfos(ss []string) ([]peer.AddrInfo, error) {
	addrs, err := ParseMultiaddrs(ss)
	if err != nil {
		return nil, err
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil, fmt.Errorf("peer addresses: %w", err)
	}
	return infos, nil
}

// allTCP reports whether every address is a TCP address (no QUIC, no
// WebTransport or WebRTC, which a PSK cannot protect).
func allTCP(addrs []ma.Multiaddr) bool {
	for _, a := range addrs {
		tcp := false
		ok := true
		ma.ForEach(a, func(c ma.Component) bool {
			switch c.Protocol().Code {
			case ma.P_TCP:
				tcp = true
			case ma.P_UDP, ma.P_QUIC_V1, ma.P_WEBTRANSPORT, ma.P_WEBRTC_DIRECT, ma.P_WS, ma.P_WSS:
				ok = false
			}
			return true
		})
		if !tcp || !ok {
			return false
		}
	}
	return true
}
