package node

import (
	"fmt"
	"log/slog"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/config"
	"github.com/expertd/expertd/node/p2p"
)

// Option changes how New builds a node: for programs that embed nodes,
// such as simulations. A daemon uses none.
type Option func(*buildOptions)

type buildOptions struct {
	host   []libp2p.Option
	pubsub []pubsub.Option
	noAPI  bool
}

// WithHostOptions adds libp2p options to the node's host, after its own
// (a simulated transport, say).
func WithHostOptions(opts ...libp2p.Option) Option {
	return func(b *buildOptions) { b.host = append(b.host, opts...) }
}

// WithPubSubOptions adds gossipsub options to the node's pubsub, after its
// own (a tracer that shows when the mesh formed, say).
func WithPubSubOptions(opts ...pubsub.Option) Option {
	return func(b *buildOptions) { b.pubsub = append(b.pubsub, opts...) }
}

// WithoutAPI runs the node without its HTTP API (api.* is ignored):
// the embedding program calls the node's methods instead.
func WithoutAPI() Option {
	return func(b *buildOptions) { b.noAPI = true }
}

// hostOptions maps the p2p.* configuration onto the host's options.
// The config was validated, so parse errors here are programming errors
// and are reported as such.
func hostOptions(cfg *config.Config, key crypto.PrivKey, log *slog.Logger) (p2p.Options, error) {
	listen, err := p2p.ParseMultiaddrs(cfg.P2P.Listen)
	if err != nil {
		return p2p.Options{}, fmt.Errorf("p2p.listen: %w", err)
	}
	boot, err := p2p.ParseAddrInfos(cfg.P2P.Bootstrap)
	if err != nil {
		return p2p.Options{}, fmt.Errorf("p2p.bootstrap: %w", err)
	}
	relays, err := p2p.ParseAddrInfos(cfg.P2P.Relays)
	if err != nil {
		return p2p.Options{}, fmt.Errorf("p2p.relays: %w", err)
	}
	announce, err := p2p.ParseAnnounce(cfg.P2P.Announce, cfg.P2P.AppendAnnounce, cfg.P2P.NoAnnounce)
	if err != nil {
		return p2p.Options{}, fmt.Errorf("p2p: %w", err)
	}
	var relay *p2p.RelayService
	if r := cfg.P2P.RelayService; r.Enabled {
		relay = &p2p.RelayService{
			MaxCircuitBytes: int64(r.MaxCircuitBytes), MaxCircuitDuration: r.MaxCircuitDuration,
			MaxCircuits: r.MaxCircuits, MaxCircuitsPerPeer: r.MaxCircuitsPerPeer,
			MaxReservations: r.MaxReservations, MaxReservationsPerIP: r.MaxReservationsPerIP,
			ReservationTTL: r.ReservationTTL,
		}
	}
	var psk []byte
	if cfg.P2P.PSKFile != "" {
		if psk, err = p2p.LoadPSK(cfg.P2P.PSKFile); err != nil {
			return p2p.Options{}, fmt.Errorf("p2p.psk_file: %w", err)
		}
	}
	var allow []peer.ID
	for i, s := range cfg.P2P.AllowPeers {
		id, err := peer.Decode(s)
		if err != nil {
			return p2p.Options{}, fmt.Errorf("p2p.allow_peers[%d]: %w", i, err)
		}
		allow = append(allow, id)
	}
	return p2p.Options{
		PSK:               psk,
		AllowPeers:        allow,
		Identity:          key,
		ListenAddrs:       listen,
		Bootstrap:         boot,
		Relays:            relays,
		Announce:          announce,
		RelayService:      relay,
		MDNS:              cfg.P2P.MDNS,
		NATPortMap:        cfg.P2P.NATPortMap,
		HolePunching:      cfg.P2P.HolePunching,
		AutoNAT:           cfg.P2P.AutoNAT,
		DHTMode:           p2p.DHTMode(cfg.P2P.DHT.Mode),
		AllowPrivateAddrs: cfg.P2P.DHT.PrivateAddrs,
		ConnLow:           cfg.P2P.ConnMgr.Low,
		ConnHigh:          cfg.P2P.ConnMgr.High,
		ConnGrace:         cfg.P2P.ConnMgr.Grace,
		MaxMemory:         int64(cfg.P2P.Resources.MaxMemory),
		MaxFDs:            cfg.P2P.Resources.MaxFDs,
		MaxConns:          cfg.P2P.Resources.MaxConns,
		MaxStreams:        cfg.P2P.Resources.MaxStreams,
		Logger:            log,
	}, nil
}
