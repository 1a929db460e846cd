package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	routedhost "github.com/libp2p/go-libp2p/p2p/host/routed"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	libp2pwebrtc "github.com/libp2p/go-libp2p/p2p/transport/webrtc"
	ws "github.com/libp2p/go-libp2p/p2p/transport/websocket"
	webtransport "github.com/libp2p/go-libp2p/p2p/transport/webtransport"

	"github.com/expertd/expertd/internal/slogutil"
)

// Host is expertd's libp2p host with its DHT and, if enabled, mDNS. It is a
// host.Host (a routed one: dialing a peer whose addresses are unknown asks
// the DHT), so the stream protocols can use it directly; Close shuts down
// all of it.
type Host struct {
	host.Host
	DHT *dht.IpfsDHT

	opts  Options
	log   *slog.Logger
	mdns  mdns.Service   // nil when off
	found *mdnsNotifee   // nil when off
	relay *relayv2.Relay // nil when off
	net   *netState

	closeOnce sync.Once
	closeErr  error
}

// NewHost builds and starts the host: it listens on o.ListenAddrs, joins the
// DHT (without contacting anyone yet: see Bootstrap) and starts mDNS if
// enabled. ctx bounds construction only; the host runs until Close.
func NewHost(ctx context.Context, o Options) (*Host, error) {
	o.defaults()
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("p2p: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rm, err := newResourceManager(&o)
	if err != nil {
		return nil, fmt.Errorf("p2p: %w", err)
	}
	cm, err := newConnManager(&o)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("p2p: %w", err)
	}

	net := newNetState(o.Logger)
	opts := []libp2p.Option{
		libp2p.Identity(o.Identity),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		Muxer(),
	}
	if o.PSK != nil {
		// QUIC, WebTransport and WebRTC cannot carry a PSK: TCP alone, and
		// a PSK connection starts with its nonce, not a proposal TCP()
		// could answer for.
		opts = append(opts, libp2p.PrivateNetwork(o.PSK), libp2p.Transport(tcp.NewTCPTransport))
	} else {
		// go-libp2p's default transports, with TCP's optimistic security
		// negotiation.
		opts = append(opts, TCP(),
			libp2p.Transport(quic.NewTransport),
			libp2p.Transport(ws.New),
			libp2p.Transport(webtransport.New),
			libp2p.Transport(libp2pwebrtc.New),
		)
	}
	if len(o.AllowPeers) > 0 {
		opts = append(opts, libp2p.ConnectionGater(allowGater{allow: o.AllowPeers}))
	}
	if len(o.ListenAddrs) == 0 {
		opts = append(opts, libp2p.NoListenAddrs)
		if len(o.Relays) > 0 {
			// NoListenAddrs turns the relay transport off; AutoRelay needs it.
			opts = append(opts, libp2p.EnableRelay())
		}
	} else {
		opts = append(opts, libp2p.ListenAddrs(o.ListenAddrs...))
	}
	if o.NATPortMap {
		opts = append(opts, libp2p.NATPortMap())
	}
	if o.HolePunching {
		// The tracer tells hole-punched connections from dialed ones (and
		// replaces go-libp2p's Prometheus one, which nothing here serves).
		opts = append(opts, libp2p.EnableHolePunching(holepunch.WithMetricsAndEventTracer(net, net)))
	}
	if o.AutoNAT {
		// v2 checks our own addresses one by one; the v1 service answers
		// peers' probes, which is what lets a peer in DHTAuto learn that it
		// is behind NAT and step down to client.
		opts = append(opts, libp2p.EnableAutoNATv2(), libp2p.EnableNATService())
	}
	if len(o.Relays) > 0 {
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(o.Relays))
	}
	if !o.Announce.empty() {
		f, err := o.Announce.factory()
		if err != nil {
			cm.Close()
			rm.Close()
			return nil, fmt.Errorf("p2p: %w", err)
		}
		opts = append(opts, libp2p.AddrsFactory(f))
	}
	opts = append(opts, o.Extra...)

	bh, err := libp2p.New(opts...)
	if err != nil {
		// libp2p.New does not always close what it was given (not when a
		// listener fails, say); closing these twice is harmless.
		cm.Close()
		rm.Close()
		return nil, fmt.Errorf("p2p: host: %w", err)
	}
	// The DHT starts after the host listens (not as libp2p.Routing, which
	// builds it before): it dials the bootstrap peers at once, and a dial
	// made before the QUIC listener exists leaves from a random port,
	// whose observed address is of no use for hole punching, on a
	// connection that then lasts.
	kad, err := dht.New(bh, dhtOptions(&o)...)
	if err != nil {
		bh.Close()
		return nil, fmt.Errorf("p2p: dht: %w", err)
	}
	h := routedhost.Wrap(bh, kad) // dialing a peer with no known address asks the DHT
	n := &Host{Host: h, DHT: kad, opts: o, log: o.Logger, net: net}
	if err := net.start(h); err != nil {
		n.Close()
		return nil, fmt.Errorf("p2p: %w", err)
	}
	if o.RelayService != nil {
		if n.relay, err = startRelay(h, o.RelayService, o.AllowPrivateAddrs); err != nil {
			n.Close()
			return nil, fmt.Errorf("p2p: %w", err)
		}
		n.log.Info("relay service on", "max_circuit_bytes", o.RelayService.MaxCircuitBytes,
			"max_circuit_duration", o.RelayService.MaxCircuitDuration, "max_circuits", o.RelayService.MaxCircuits,
			"max_reservations", o.RelayService.MaxReservations)
	}
	if o.MDNS {
		n.found = newMDNSNotifee(h, o.Logger)
		n.mdns = mdns.NewMdnsService(h, MDNSServiceName, n.found)
		if err := n.mdns.Start(); err != nil {
			n.mdns = nil
			n.Close()
			return nil, fmt.Errorf("p2p: mdns: %w", err)
		}
	}
	n.log.Info("p2p host started", slogutil.Self(h.ID()), "addrs", h.Addrs(), "dht_mode", o.DHTMode, "mdns", o.MDNS)
	return n, nil
}

// Close stops mDNS, the DHT and the host, in that order. Later calls
// return the first call's result.
func (n *Host) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.mdns != nil {
			errs = append(errs, n.mdns.Close())
		}
		if n.found != nil {
			n.found.close()
		}
		if n.relay != nil {
			errs = append(errs, n.relay.Close())
		}
		if n.DHT != nil {
			errs = append(errs, n.DHT.Close())
		}
		errs = append(errs, n.Host.Close())
		n.net.close()
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
