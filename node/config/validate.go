package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/handoff"
	"github.com/expertd/expertd/node/p2p"
)

// Allowed values of the enumerated keys.
var (
	LogLevels = []string{"debug", "info", "warn", "error"}
	DHTModes  = []string{"auto", "server", "client"}
	Scopes    = []string{compress.ScopeGlobal, compress.ScopeTensor}
)

// Validate checks every value and returns all problems found, each a
// *KeyError naming its key, joined; nil when the configuration is usable.
func (c *Config) Validate() error {
	var errs []error
	add := func(e *KeyError) {
		if e != nil {
			errs = append(errs, e)
		}
	}
	if c.Version != CurrentVersion {
		add(keyErr("version", "must be %d, got %d", CurrentVersion, c.Version))
	}
	if c.DataDir() == "" {
		add(keyErr("data_dir", "empty, and neither XDG_DATA_HOME nor the home directory is known: set it"))
	}
	add(oneOf("log.level", c.Log.Level, LogLevels))
	errs = append(errs, c.P2P.validate()...)
	errs = append(errs, c.API.validate()...)
	errs = append(errs, c.Store.validate()...)
	errs = append(errs, c.Fetch.validate()...)
	errs = append(errs, c.Gossip.validate()...)
	errs = append(errs, c.Compress.validate()...)
	errs = append(errs, c.Inference.validate()...)
	for i, s := range c.Trust.Publishers {
		if s == TrustEveryone {
			continue
		}
		if _, err := peer.Decode(s); err != nil {
			errs = append(errs, keyErr(fmt.Sprintf("trust.publishers[%d]", i), "invalid peer ID %q (or %q for every publisher): %w", s, TrustEveryone, err))
		}
	}
	return errors.Join(errs...)
}

func (p *P2PConfig) validate() []error {
	var errs []error
	for i, s := range p.Listen {
		key := fmt.Sprintf("p2p.listen[%d]", i)
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			errs = append(errs, keyErr(key, "invalid multiaddr %q: %w", s, err))
			continue
		}
		if _, err := a.ValueForProtocol(ma.P_P2P); err == nil {
			errs = append(errs, keyErr(key, "%q: a listen address must not name a peer (/p2p/...)", s))
		}
	}
	errs = append(errs, peerAddrs("p2p.bootstrap", p.Bootstrap)...)
	errs = append(errs, peerAddrs("p2p.relays", p.Relays)...)
	errs = append(errs, p.validateAnnounce()...)
	errs = append(errs, p.RelayService.validate()...)
	for i, s := range p.AllowPeers {
		if _, err := peer.Decode(s); err != nil {
			errs = append(errs, keyErr(fmt.Sprintf("p2p.allow_peers[%d]", i), "invalid peer ID %q: %w", s, err))
		}
	}
	if p.PSKFile != "" {
		if _, err := os.Stat(p.PSKFile); err != nil {
			errs = append(errs, keyErr("p2p.psk_file", "%w", err))
		}
		for i, s := range p.Listen {
			if strings.Contains(s, "/udp/") || strings.Contains(s, "/quic") || strings.Contains(s, "/ws") || strings.Contains(s, "/web") {
				errs = append(errs, keyErr(fmt.Sprintf("p2p.listen[%d]", i), "%q: a private network (p2p.psk_file) protects TCP only; QUIC has no PSK support", s))
			}
		}
	}
	if e := oneOf("p2p.dht.mode", p.DHT.Mode, DHTModes); e != nil {
		errs = append(errs, e)
	}
	cm, r := p.ConnMgr, p.Resources
	if cm.Low < 0 {
		errs = append(errs, keyErr("p2p.conn_mgr.low", "must not be negative, got %d", cm.Low))
	}
	if cm.High < 1 {
		errs = append(errs, keyErr("p2p.conn_mgr.high", "must be at least 1, got %d", cm.High))
	} else if cm.Low > cm.High {
		errs = append(errs, keyErr("p2p.conn_mgr.low", "%d is above p2p.conn_mgr.high (%d)", cm.Low, cm.High))
	}
	if cm.High > r.MaxConns && r.MaxConns > 0 {
		errs = append(errs, keyErr("p2p.conn_mgr.high", "%d is above p2p.resources.max_conns (%d): the resource manager would refuse connections before the connection manager trims", cm.High, r.MaxConns))
	}
	if cm.Grace < 0 {
		errs = append(errs, keyErr("p2p.conn_mgr.grace", "must not be negative, got %v", cm.Grace))
	}
	if r.MaxMemory < 1<<20 {
		errs = append(errs, keyErr("p2p.resources.max_memory", "must be at least 1MiB, got %v", r.MaxMemory))
	}
	for _, f := range []struct {
		key string
		n   int
	}{
		{"p2p.resources.max_fds", r.MaxFDs},
		{"p2p.resources.max_conns", r.MaxConns},
		{"p2p.resources.max_streams", r.MaxStreams},
	} {
		if f.n < 1 {
			errs = append(errs, keyErr(f.key, "must be at least 1, got %d", f.n))
		}
	}
	return errs
}

// validateAnnounce checks p2p.announce, append_announce and no_announce.
func (p *P2PConfig) validateAnnounce() []error {
	var errs []error
	for _, l := range []struct {
		key  string
		list []string
	}{{"p2p.announce", p.Announce}, {"p2p.append_announce", p.AppendAnnounce}, {"p2p.no_announce", p.NoAnnounce}} {
		for i, s := range l.list {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				errs = append(errs, keyErr(fmt.Sprintf("%s[%d]", l.key, i), "invalid multiaddr %q: %w", s, err))
			} else if _, err := a.ValueForProtocol(ma.P_P2P); err == nil {
				errs = append(errs, keyErr(fmt.Sprintf("%s[%d]", l.key, i), "%q: name no peer (/p2p/...): the node's own ID is added", s))
			}
		}
	}
	if len(errs) == 0 {
		if _, err := p2p.ParseAnnounce(p.Announce, p.AppendAnnounce, p.NoAnnounce); err != nil {
			errs = append(errs, keyErr("p2p.no_announce", "%w", err))
		}
	}
	return errs
}

func (r *RelayServiceConfig) validate() []error {
	var errs []error
	if r.MaxCircuitBytes < 0 {
		errs = append(errs, keyErr("p2p.relay_service.max_circuit_bytes", "must not be negative"))
	}
	if d := r.MaxCircuitDuration; d < 0 || d > 0 && d < time.Second {
		errs = append(errs, keyErr("p2p.relay_service.max_circuit_duration", "%v: want 0s (no limit) or at least 1s", d))
	}
	for _, f := range []struct {
		key string
		n   int
	}{
		{"p2p.relay_service.max_circuits", r.MaxCircuits},
		{"p2p.relay_service.max_circuits_per_peer", r.MaxCircuitsPerPeer},
		{"p2p.relay_service.max_reservations", r.MaxReservations},
		{"p2p.relay_service.max_reservations_per_ip", r.MaxReservationsPerIP},
	} {
		if f.n < 1 {
			errs = append(errs, keyErr(f.key, "must be at least 1, got %d", f.n))
		}
	}
	if r.ReservationTTL < p2p.MinReservationTTL {
		errs = append(errs, keyErr("p2p.relay_service.reservation_ttl", "%v: want at least %v (peers renew from two minutes before it ends)", r.ReservationTTL, p2p.MinReservationTTL))
	}
	return errs
}

// peerAddrs checks a list of multiaddrs that each end in /p2p/<peer id>.
func peerAddrs(key string, list []string) []error {
	var errs []error
	for i, s := range list {
		k := fmt.Sprintf("%s[%d]", key, i)
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			errs = append(errs, keyErr(k, "invalid multiaddr %q: %w", s, err))
			continue
		}
		if _, err := peer.AddrInfoFromP2pAddr(a); err != nil {
			errs = append(errs, keyErr(k, "%q must end in /p2p/<peer id>: %w", s, err))
		}
	}
	return errs
}

func (a *APIConfig) validate() []error {
	var errs []error
	for i, h := range a.AllowedHosts {
		if _, err := api.ParseHost(h); err != nil {
			errs = append(errs, keyErr(fmt.Sprintf("api.allowed_hosts[%d]", i), "%w", err))
		}
	}
	for i, o := range a.AllowedOrigins {
		if _, err := api.ParseOrigin(o); err != nil {
			errs = append(errs, keyErr(fmt.Sprintf("api.allowed_origins[%d]", i), "%w", err))
		}
	}
	return append(errs, a.validateListen()...)
}

func (a *APIConfig) validateListen() []error {
	host, port, err := net.SplitHostPort(a.Listen)
	if err != nil {
		return []error{keyErr("api.listen", "%q: want host:port, e.g. 127.0.0.1:5180: %w", a.Listen, err)}
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil {
		return []error{keyErr("api.listen", "%q: port %q is not a number from 0 to 65535", a.Listen, port)}
	} else if n == 0 {
		return []error{keyErr("api.listen", "%q: port 0 would pick a random port; name one", a.Listen)}
	}
	if a.Token == "" && !isLoopback(host) {
		return []error{keyErr("api.token", "required when api.listen (%q) is not a loopback address", a.Listen)}
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (s *StoreConfig) validate() []error {
	if s.MaxExpertSize < 1 {
		return []error{keyErr("store.max_expert_size", "must be at least 1 byte, got %v", s.MaxExpertSize)}
	}
	return nil
}

func (f *FetchConfig) validate() []error {
	var errs []error
	if f.MaxProviders < 1 {
		errs = append(errs, keyErr("fetch.max_providers", "must be at least 1, got %d", f.MaxProviders))
	}
	if f.MaxStreams < 1 {
		errs = append(errs, keyErr("fetch.max_streams", "must be at least 1, got %d", f.MaxStreams))
	}
	if f.ServeRate < 0 {
		errs = append(errs, keyErr("fetch.serve_rate_per_peer", "must not be negative"))
	}
	if f.StreamsPerPeer < 1 {
		errs = append(errs, keyErr("fetch.streams_per_peer", "must be at least 1, got %d", f.StreamsPerPeer))
	}
	if f.FindTimeout < 0 {
		errs = append(errs, keyErr("fetch.find_timeout", "must not be negative (0: no limit), got %v", f.FindTimeout))
	}
	if f.IdleTimeout <= 0 {
		errs = append(errs, keyErr("fetch.idle_timeout", "must be positive, got %v", f.IdleTimeout))
	}
	if f.MinRate < 1 {
		errs = append(errs, keyErr("fetch.min_rate", "must be at least 1 byte per second, got %v", f.MinRate))
	}
	return errs
}

func (g *GossipConfig) validate() []error {
	var errs []error
	if g.TTL <= 0 {
		errs = append(errs, keyErr("gossip.ttl", "must be positive, got %v", g.TTL))
	}
	if g.Reannounce <= 0 {
		errs = append(errs, keyErr("gossip.reannounce", "must be positive, got %v", g.Reannounce))
	} else if g.TTL > 0 && g.Reannounce >= g.TTL {
		errs = append(errs, keyErr("gossip.reannounce", "%v must be shorter than gossip.ttl (%v), or announcements lapse", g.Reannounce, g.TTL))
	}
	if g.MaxPerSecond < 1 {
		errs = append(errs, keyErr("gossip.max_per_second", "must be at least 1, got %d", g.MaxPerSecond))
	}
	for _, k := range []struct {
		key string
		v   int
	}{{"gossip.max_experts", g.MaxExperts}, {"gossip.max_per_provider", g.MaxPerProvider}, {"gossip.max_catalog", g.MaxCatalog}} {
		if k.v < 1 {
			errs = append(errs, keyErr(k.key, "must be at least 1, got %d", k.v))
		}
	}
	if g.MaxViewMemory < 1<<20 {
		errs = append(errs, keyErr("gossip.max_view_memory", "must be at least 1MiB, got %v", g.MaxViewMemory))
	}
	if !(g.CatalogRate > 0) {
		errs = append(errs, keyErr("gossip.catalog_rate", "must be positive, got %v", g.CatalogRate))
	}
	return errs
}

func (c *CompressConfig) validate() []error {
	var errs []error
	if !(c.Density > 0 && c.Density <= 1) {
		errs = append(errs, keyErr("compress.density", "must be in (0, 1], got %v", c.Density))
	}
	if _, err := compress.ParseAlpha(c.Alpha); err != nil {
		errs = append(errs, keyErr("compress.alpha", "want auto or a positive number, got %q", c.Alpha))
	}
	if e := oneOf("compress.scope", c.Scope, Scopes); e != nil {
		errs = append(errs, e)
	}
	return errs
}

func oneOf(key, v string, allowed []string) *KeyError {
	if slices.Contains(allowed, v) {
		return nil
	}
	return keyErr(key, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
}

func (c *InferenceConfig) validate() []error {
	var errs []error
	if _, err := compress.ParseDType(c.DType); err != nil {
		errs = append(errs, keyErr("inference.dtype", "%w", err))
	}
	if c.VLLMURL != "" {
		if u, err := url.Parse(c.VLLMURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, keyErr("inference.vllm_url", "%q: want http://host:port", c.VLLMURL))
		}
	}
	if c.RetryBackoff <= 0 || c.RetryMaxBackoff < c.RetryBackoff {
		errs = append(errs, keyErr("inference.retry_backoff", "%v .. %v: want 0 < retry_backoff <= retry_max_backoff", c.RetryBackoff, c.RetryMaxBackoff))
	}
	if c.VLLMCheck < 0 || c.VLLMCheck > 0 && c.VLLMCheck < time.Second {
		errs = append(errs, keyErr("inference.vllm_check", "%v: want 0 (never) or at least 1s", c.VLLMCheck))
	}
	if _, err := handoff.ParseRules(c.Want); err != nil {
		errs = append(errs, keyErr("inference.want", "%w", err))
	}
	if !slices.Contains(handoff.MaxLoRARanks, c.MaxLoRARank) {
		errs = append(errs, keyErr("inference.max_lora_rank", "%d: want one of %v, as vllm serve --max-lora-rank", c.MaxLoRARank, handoff.MaxLoRARanks))
	}
	if c.ServerAdaptersDir != "" && !filepath.IsAbs(c.ServerAdaptersDir) {
		errs = append(errs, keyErr("inference.server_adapters_dir", "%q: want an absolute path, as the server mounts adapters_dir", c.ServerAdaptersDir))
	}
	if c.VersionGrace <= 0 {
		errs = append(errs, keyErr("inference.version_grace", "%v: want a positive duration", c.VersionGrace))
	}
	return errs
}
