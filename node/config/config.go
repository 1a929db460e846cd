package config

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is expertd's configuration; configs/expertd.yaml documents each key.
// The mapstructure tags are the keys; a test keeps them and the YAML equal.
// A new section (inference.*, say) is a struct field here, its keys with
// their defaults and comments in configs/expertd.yaml, and a validate method
// called from Validate.
type Config struct {
	Version int `mapstructure:"version"`
	// DataDirPath is data_dir as configured; DataDir resolves the default.
	DataDirPath string          `mapstructure:"data_dir"`
	Log         LogConfig       `mapstructure:"log"`
	P2P         P2PConfig       `mapstructure:"p2p"`
	API         APIConfig       `mapstructure:"api"`
	Store       StoreConfig     `mapstructure:"store"`
	Fetch       FetchConfig     `mapstructure:"fetch"`
	Gossip      GossipConfig    `mapstructure:"gossip"`
	Compress    CompressConfig  `mapstructure:"compress"`
	Inference   InferenceConfig `mapstructure:"inference"`
	Trust       TrustConfig     `mapstructure:"trust"`

	// File is the configuration file that was read, "" if none.
	File string `mapstructure:"-"`
}

// LogConfig is log.*.
type LogConfig struct {
	Level string `mapstructure:"level"` // debug, info, warn or error
}

// SlogLevel returns Level as a slog.Level (info if it is not one of the four).
func (l LogConfig) SlogLevel() slog.Level {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		return slog.LevelInfo
	}
	return lv
}

// P2PConfig is p2p.*: the libp2p host and its discovery.
type P2PConfig struct {
	Listen       []string `mapstructure:"listen"`    // multiaddrs
	Bootstrap    []string `mapstructure:"bootstrap"` // multiaddrs with /p2p/ID
	MDNS         bool     `mapstructure:"mdns"`
	NATPortMap   bool     `mapstructure:"nat_port_map"`
	HolePunching bool     `mapstructure:"hole_punching"`
	AutoNAT      bool     `mapstructure:"autonat"`
	Relays       []string `mapstructure:"relays"` // multiaddrs with /p2p/ID
	// Announce, AppendAnnounce and NoAnnounce are kubo's Addresses.Announce,
	// AppendAnnounce and NoAnnounce: multiaddrs (NoAnnounce also
	// /ip4/<net>/ipcidr/<bits> ranges).
	Announce       []string           `mapstructure:"announce"`
	AppendAnnounce []string           `mapstructure:"append_announce"`
	NoAnnounce     []string           `mapstructure:"no_announce"`
	RelayService   RelayServiceConfig `mapstructure:"relay_service"`
	PSKFile        string             `mapstructure:"psk_file"`
	AllowPeers     []string           `mapstructure:"allow_peers"` // peer IDs
	DHT            DHTConfig          `mapstructure:"dht"`
	ConnMgr        ConnMgrConfig      `mapstructure:"conn_mgr"`
	Resources      ResourcesConfig    `mapstructure:"resources"`
}

// RelayServiceConfig is p2p.relay_service.*: the circuit relay v2 service.
type RelayServiceConfig struct {
	Enabled              bool          `mapstructure:"enabled"`
	MaxCircuitBytes      Size          `mapstructure:"max_circuit_bytes"`    // 0: no limit
	MaxCircuitDuration   time.Duration `mapstructure:"max_circuit_duration"` // 0: no limit
	MaxCircuits          int           `mapstructure:"max_circuits"`
	MaxCircuitsPerPeer   int           `mapstructure:"max_circuits_per_peer"`
	MaxReservations      int           `mapstructure:"max_reservations"`
	MaxReservationsPerIP int           `mapstructure:"max_reservations_per_ip"`
	ReservationTTL       time.Duration `mapstructure:"reservation_ttl"`
}

// DHTConfig is p2p.dht.*.
type DHTConfig struct {
	Mode         string `mapstructure:"mode"` // auto, server or client
	PrivateAddrs bool   `mapstructure:"private_addrs"`
}

// ConnMgrConfig is p2p.conn_mgr.*: the connection manager's watermarks.
type ConnMgrConfig struct {
	Low   int           `mapstructure:"low"`
	High  int           `mapstructure:"high"`
	Grace time.Duration `mapstructure:"grace"`
}

// ResourcesConfig is p2p.resources.*: the libp2p resource manager's system limits.
type ResourcesConfig struct {
	MaxMemory  Size `mapstructure:"max_memory"`
	MaxFDs     int  `mapstructure:"max_fds"`
	MaxConns   int  `mapstructure:"max_conns"`
	MaxStreams int  `mapstructure:"max_streams"`
}

// APIConfig is api.*: the local HTTP API.
type APIConfig struct {
	Listen         string   `mapstructure:"listen"` // host:port
	Token          string   `mapstructure:"token"`
	AllowedHosts   []string `mapstructure:"allowed_hosts"`   // names the Host header may carry, without a port
	AllowedOrigins []string `mapstructure:"allowed_origins"` // web origins whose pages may call the API
}

// StoreConfig is store.*: the expert store.
type StoreConfig struct {
	Quota         Size `mapstructure:"quota"` // 0: unlimited
	MaxExpertSize Size `mapstructure:"max_expert_size"`
	// MaxOutputSize bounds what one expert may expand to on disk
	// (materialize, hand-off, prefetch); 0: no limit.
	MaxOutputSize Size `mapstructure:"max_output_size"`
}

// OutputLimit is MaxOutputSize as compress.ExpandOptions.MaxOutput and
// compress.CheckOutput take it (negative: no limit).
func (s StoreConfig) OutputLimit() int64 {
	if s.MaxOutputSize == 0 {
		return -1
	}
	return int64(s.MaxOutputSize)
}

// FetchConfig is fetch.*: downloading and serving experts.
type FetchConfig struct {
	MaxProviders   int           `mapstructure:"max_providers"`
	StreamsPerPeer int           `mapstructure:"streams_per_peer"`
	MaxStreams     int           `mapstructure:"max_streams"`
	ServeRate      Size          `mapstructure:"serve_rate_per_peer"` // bytes per second; 0: no cap
	IdleTimeout    time.Duration `mapstructure:"idle_timeout"`
	MinRate        Size          `mapstructure:"min_rate"` // bytes per second
	// FindTimeout bounds how long a fetch the user asked for looks for
	// providers before one answers; 0: only its attempts bound it.
	FindTimeout time.Duration `mapstructure:"find_timeout"`
}

// GossipConfig is gossip.*: expert announcements.
type GossipConfig struct {
	TTL            time.Duration `mapstructure:"ttl"`
	Reannounce     time.Duration `mapstructure:"reannounce"`
	MaxPerSecond   int           `mapstructure:"max_per_second"`
	MaxExperts     int           `mapstructure:"max_experts"`
	MaxViewMemory  Size          `mapstructure:"max_view_memory"`
	MaxPerProvider int           `mapstructure:"max_per_provider"`
	MaxCatalog     int           `mapstructure:"max_catalog"`
	CatalogRate    float64       `mapstructure:"catalog_rate"` // new catalog entries per second per peer
}

// CompressConfig is compress.*: ComPEFT defaults for experts compressed by the daemon.
type CompressConfig struct {
	Density float64 `mapstructure:"density"`
	Alpha   string  `mapstructure:"alpha"` // auto or a positive number; see compress.ParseAlpha
	Scope   string  `mapstructure:"scope"` // global or tensor
}

// InferenceConfig is inference.*: the hand-off to an inference server.
type InferenceConfig struct {
	AdaptersDir       string        `mapstructure:"adapters_dir"`
	ServerAdaptersDir string        `mapstructure:"server_adapters_dir"` // adapters_dir as the server mounts it
	ServedModel       string        `mapstructure:"served_model"`
	BaseModelAliases  []string      `mapstructure:"base_model_aliases"`
	AcceptUnknownBase bool          `mapstructure:"accept_unknown_base"`
	MaxLoRARank       int           `mapstructure:"max_lora_rank"`
	VersionGrace      time.Duration `mapstructure:"version_grace"`
	DType             string        `mapstructure:"dtype"`
	VLLMURL           string        `mapstructure:"vllm_url"`
	VLLMAPIKey        string        `mapstructure:"vllm_api_key"`
	RetryBackoff      time.Duration `mapstructure:"retry_backoff"`
	RetryMaxBackoff   time.Duration `mapstructure:"retry_max_backoff"`
	VLLMCheck         time.Duration `mapstructure:"vllm_check"` // 0: never
	Want              []string      `mapstructure:"want"`
}

// TrustConfig is trust.*: whose experts are trusted.
type TrustConfig struct {
	Publishers []string `mapstructure:"publishers"` // peer IDs, or TrustEveryone
}

// TrustEveryone in trust.publishers trusts every publisher of the swarm.
const TrustEveryone = "*"

// Everyone reports whether trust.publishers trusts every publisher.
func (t TrustConfig) Everyone() bool {
	for _, s := range t.Publishers {
		if s == TrustEveryone {
			return true
		}
	}
	return false
}

// DataDir returns the data directory: data_dir with a leading ~ expanded,
// or, when empty, $XDG_DATA_HOME/expertd, else ~/.local/share/expertd.
// It returns "" when neither XDG_DATA_HOME nor the home directory is known.
func (c *Config) DataDir() string {
	if c.DataDirPath != "" {
		return expandHome(c.DataDirPath)
	}
	return xdgDir("XDG_DATA_HOME", filepath.Join(".local", "share"))
}

// DefaultFile is where Load looks for a file when none is named:
// $XDG_CONFIG_HOME/expertd/expertd.yaml, else ~/.config/expertd/expertd.yaml;
// "" when neither is known.
func DefaultFile() string {
	dir := xdgDir("XDG_CONFIG_HOME", ".config")
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "expertd.yaml")
}

// xdgDir returns $env/expertd if env holds an absolute path (the XDG spec
// says to ignore relative ones), else ~/fallback/expertd.
func xdgDir(env, fallback string) string {
	if d := os.Getenv(env); filepath.IsAbs(d) {
		return filepath.Join(d, "expertd")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, fallback, "expertd")
}

func expandHome(p string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return filepath.Clean(p)
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, p[1:])
}
