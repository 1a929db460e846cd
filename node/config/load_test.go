package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/expertd/expertd/compress"
)

// isolate points the XDG directories at empty temporary ones, so that no
// file of the machine's user is read.
func isolate(t *testing.T) (configHome, dataHome string) {
	t.Helper()
	configHome, dataHome = t.TempDir(), t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", configHome)
	t.Setenv("XDG_DATA_HOME", dataHome)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, EnvPrefix+"_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	return configHome, dataHome
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "expertd.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, v *viper.Viper, file string) *Config {
	t.Helper()
	c, err := Load(v, file)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	_, dataHome := isolate(t)
	c := mustLoad(t, viper.New(), "")
	if c.File != "" {
		t.Errorf("File = %q, want none", c.File)
	}
	if c.Version != CurrentVersion || c.Log.Level != "info" {
		t.Errorf("version %d, log.level %q", c.Version, c.Log.Level)
	}
	if got := c.DataDir(); got != filepath.Join(dataHome, "expertd") {
		t.Errorf("DataDir() = %q", got)
	}
	p := c.P2P
	if !slices.Equal(p.Listen, []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}) {
		t.Errorf("p2p.listen = %q", p.Listen)
	}
	if len(p.Bootstrap) != 0 || len(p.Relays) != 0 || !p.MDNS || !p.NATPortMap || !p.HolePunching || !p.AutoNAT {
		t.Errorf("p2p = %+v", p)
	}
	if p.DHT.Mode != "auto" || !p.DHT.PrivateAddrs {
		t.Errorf("p2p.dht = %+v", p.DHT)
	}
	if p.ConnMgr != (ConnMgrConfig{Low: 32, High: 96, Grace: 20 * time.Second}) {
		t.Errorf("p2p.conn_mgr = %+v", p.ConnMgr)
	}
	if p.Resources != (ResourcesConfig{MaxMemory: 256 << 20, MaxFDs: 512, MaxConns: 256, MaxStreams: 2048}) {
		t.Errorf("p2p.resources = %+v", p.Resources)
	}
	if a := c.API; a.Listen != "127.0.0.1:5180" || a.Token != "" || len(a.AllowedHosts) != 0 || len(a.AllowedOrigins) != 0 {
		t.Errorf("api = %+v", c.API)
	}
	if c.Store != (StoreConfig{Quota: 0, MaxExpertSize: 4 << 30, MaxOutputSize: compress.DefaultMaxOutput}) {
		t.Errorf("store = %+v", c.Store)
	}
	if c.Store.OutputLimit() != compress.DefaultMaxOutput || (StoreConfig{}).OutputLimit() >= 0 {
		t.Errorf("output limit %d; 0 gives %d", c.Store.OutputLimit(), (StoreConfig{}).OutputLimit())
	}
	if c.Fetch != (FetchConfig{MaxProviders: 8, StreamsPerPeer: 4, MaxStreams: 8, IdleTimeout: 20 * time.Second, MinRate: 64 << 10, FindTimeout: time.Minute}) {
		t.Errorf("fetch = %+v", c.Fetch)
	}
	if c.Gossip != (GossipConfig{TTL: 30 * time.Minute, Reannounce: 5 * time.Minute, MaxPerSecond: 10,
		MaxExperts: 100_000, MaxViewMemory: 16 << 20, MaxPerProvider: 1000, MaxCatalog: 1000, CatalogRate: 10}) {
		t.Errorf("gossip = %+v", c.Gossip)
	}
	if c.Compress != (CompressConfig{Density: 0.2, Alpha: "auto", Scope: "global"}) {
		t.Errorf("compress = %+v", c.Compress)
	}
}

func TestDataDirFallback(t *testing.T) {
	isolate(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", "relative/is/ignored")
	c := &Config{}
	if got, want := c.DataDir(), filepath.Join(home, ".local", "share", "expertd"); got != want {
		t.Errorf("DataDir() = %q, want %q", got, want)
	}
	c.DataDirPath = "~/experts"
	if got, want := c.DataDir(), filepath.Join(home, "experts"); got != want {
		t.Errorf("DataDir() = %q, want %q", got, want)
	}
	c.DataDirPath = "/srv/expertd/"
	if got := c.DataDir(); got != "/srv/expertd" {
		t.Errorf("DataDir() = %q", got)
	}
}

func TestFileOverridesDefaults(t *testing.T) {
	isolate(t)
	file := writeFile(t, `
version: 1
data_dir: /srv/expertd
p2p:
  listen: [/ip4/127.0.0.1/tcp/4101]
  mdns: false
  resources:
    max_memory: 1GiB
store:
  quota: 100GB
fetch:
  idle_timeout: 1m
`)
	c := mustLoad(t, viper.New(), file)
	if c.File != file || c.DataDir() != "/srv/expertd" {
		t.Errorf("File %q DataDir %q", c.File, c.DataDir())
	}
	if !slices.Equal(c.P2P.Listen, []string{"/ip4/127.0.0.1/tcp/4101"}) || c.P2P.MDNS {
		t.Errorf("p2p = %+v", c.P2P)
	}
	if c.P2P.Resources.MaxMemory != 1<<30 || c.P2P.Resources.MaxConns != 256 {
		t.Errorf("p2p.resources = %+v", c.P2P.Resources)
	}
	if c.Store.Quota != 100e9 || c.Store.MaxExpertSize != 4<<30 || c.Fetch.IdleTimeout != time.Minute {
		t.Errorf("store %+v fetch %+v", c.Store, c.Fetch)
	}
	if !c.P2P.NATPortMap || c.API.Listen != "127.0.0.1:5180" {
		t.Errorf("defaults lost: %+v %+v", c.P2P, c.API)
	}
}

func TestDefaultFileLocation(t *testing.T) {
	configHome, _ := isolate(t)
	dir := filepath.Join(configHome, "expertd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "expertd.yaml")
	if err := os.WriteFile(file, []byte("log:\n  level: debug\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if DefaultFile() != file {
		t.Fatalf("DefaultFile() = %q, want %q", DefaultFile(), file)
	}
	c := mustLoad(t, viper.New(), "")
	if c.File != file || c.Log.Level != "debug" {
		t.Errorf("File %q, log.level %q", c.File, c.Log.Level)
	}
}

func TestNamedFileMustExist(t *testing.T) {
	isolate(t)
	_, err := Load(viper.New(), filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("err = %v, want a not-exist error naming the file", err)
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	isolate(t)
	c := mustLoad(t, viper.New(), writeFile(t, "# nothing set\n"))
	if c.Version != CurrentVersion || c.API.Listen != "127.0.0.1:5180" {
		t.Errorf("%+v", c)
	}
}

func TestEnvOverridesFile(t *testing.T) {
	isolate(t)
	file := writeFile(t, "api:\n  listen: 127.0.0.1:6000\nstore:\n  quota: 1GiB\np2p:\n  mdns: true\n")
	t.Setenv("EXPERTD_API_LISTEN", "127.0.0.1:7000")
	t.Setenv("EXPERTD_STORE_QUOTA", "10GiB")
	t.Setenv("EXPERTD_P2P_MDNS", "false")
	t.Setenv("EXPERTD_P2P_LISTEN", "/ip4/127.0.0.1/tcp/4201, /ip4/127.0.0.1/udp/4201/quic-v1")
	t.Setenv("EXPERTD_P2P_CONN_MGR_GRACE", "1m30s")
	t.Setenv("EXPERTD_FETCH_MAX_PROVIDERS", "3")
	t.Setenv("EXPERTD_DATA_DIR", "/tmp/x")
	t.Setenv("EXPERTD_API_ALLOWED_HOSTS", "node1,node2")
	c := mustLoad(t, viper.New(), file)
	if !slices.Equal(c.API.AllowedHosts, []string{"node1", "node2"}) {
		t.Errorf("api.allowed_hosts = %q", c.API.AllowedHosts)
	}
	if c.API.Listen != "127.0.0.1:7000" || c.Store.Quota != 10<<30 || c.P2P.MDNS {
		t.Errorf("api %+v store %+v mdns %v", c.API, c.Store, c.P2P.MDNS)
	}
	if !slices.Equal(c.P2P.Listen, []string{"/ip4/127.0.0.1/tcp/4201", "/ip4/127.0.0.1/udp/4201/quic-v1"}) {
		t.Errorf("p2p.listen = %q", c.P2P.Listen)
	}
	if c.P2P.ConnMgr.Grace != 90*time.Second || c.Fetch.MaxProviders != 3 || c.DataDir() != "/tmp/x" {
		t.Errorf("grace %v max_providers %d data_dir %q", c.P2P.ConnMgr.Grace, c.Fetch.MaxProviders, c.DataDir())
	}
}

// The NAT keys: relay service limits sized for experts by default, and
// set from the environment as the compose file does.
func TestRelayServiceAndAnnounceKeys(t *testing.T) {
	isolate(t)
	c := mustLoad(t, viper.New(), "")
	r := c.P2P.RelayService
	if r.Enabled || r.MaxCircuitBytes != 1<<30 || r.MaxCircuitDuration != 10*time.Minute || r.MaxCircuits != 64 ||
		r.MaxCircuitsPerPeer != 16 || r.MaxReservations != 128 || r.MaxReservationsPerIP != 8 || r.ReservationTTL != time.Hour {
		t.Errorf("relay_service defaults %+v", r)
	}
	if len(c.P2P.Announce)+len(c.P2P.AppendAnnounce)+len(c.P2P.NoAnnounce) != 0 {
		t.Errorf("announce defaults %q %q %q", c.P2P.Announce, c.P2P.AppendAnnounce, c.P2P.NoAnnounce)
	}
	t.Setenv("EXPERTD_P2P_RELAY_SERVICE_ENABLED", "true")
	t.Setenv("EXPERTD_P2P_RELAY_SERVICE_MAX_CIRCUIT_BYTES", "0")
	t.Setenv("EXPERTD_P2P_APPEND_ANNOUNCE", "/ip4/192.0.0.140/tcp/4001,/ip4/192.0.0.140/udp/4001/quic-v1")
	t.Setenv("EXPERTD_P2P_NO_ANNOUNCE", "/ip4/10.0.0.0/ipcidr/8")
	c = mustLoad(t, viper.New(), "")
	if !c.P2P.RelayService.Enabled || c.P2P.RelayService.MaxCircuitBytes != 0 {
		t.Errorf("relay_service %+v", c.P2P.RelayService)
	}
	if len(c.P2P.AppendAnnounce) != 2 || !slices.Equal(c.P2P.NoAnnounce, []string{"/ip4/10.0.0.0/ipcidr/8"}) {
		t.Errorf("append_announce %q no_announce %q", c.P2P.AppendAnnounce, c.P2P.NoAnnounce)
	}
}

func TestFlagOverridesEnv(t *testing.T) {
	isolate(t)
	file := writeFile(t, "api:\n  listen: 127.0.0.1:6000\nlog:\n  level: warn\n")
	t.Setenv("EXPERTD_API_LISTEN", "127.0.0.1:7000")

	fs := pflag.NewFlagSet("daemon", pflag.ContinueOnError)
	fs.String("api-listen", "127.0.0.1:5180", "")
	fs.String("log-level", "info", "") // not given: must not override the file
	fs.StringSlice("p2p-listen", nil, "")
	v := viper.New()
	for key, name := range map[string]string{"api.listen": "api-listen", "log.level": "log-level", "p2p.listen": "p2p-listen"} {
		if err := v.BindPFlag(key, fs.Lookup(name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.Parse([]string{"--api-listen=127.0.0.1:8000", "--p2p-listen=/ip4/127.0.0.1/tcp/1,/ip4/127.0.0.1/tcp/2"}); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, v, file)
	if c.API.Listen != "127.0.0.1:8000" {
		t.Errorf("api.listen = %q, want the flag's", c.API.Listen)
	}
	if c.Log.Level != "warn" {
		t.Errorf("log.level = %q, want the file's (flag not given)", c.Log.Level)
	}
	if !slices.Equal(c.P2P.Listen, []string{"/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2"}) {
		t.Errorf("p2p.listen = %q", c.P2P.Listen)
	}
}

func TestUnknownKeys(t *testing.T) {
	isolate(t)
	for _, tc := range []struct{ body, key, reason string }{
		{"p2p:\n  listn: []\n", "p2p.listn", "unknown key"},
		{"telemetry:\n  url: http://x\n", "telemetry", "unknown key"},
		{"verbose: true\n", "verbose", "unknown key"},
		{"p2p: 5\n", "p2p", "must be a section"},
		{"log:\n  level:\n    x: 1\n", "log.level", "must be a value"},
	} {
		_, err := Load(viper.New(), writeFile(t, tc.body))
		assertKeyError(t, tc.body, err, tc.key, tc.reason)
	}
}

func TestKeysAreCaseInsensitive(t *testing.T) {
	isolate(t)
	c := mustLoad(t, viper.New(), writeFile(t, "Log:\n  Level: debug\n"))
	if c.Log.Level != "debug" {
		t.Errorf("log.level = %q", c.Log.Level)
	}
}

// Each bad value fails with its key named first.
func TestValidationErrorsNameTheirKey(t *testing.T) {
	isolate(t)
	for _, tc := range []struct{ body, key, reason string }{
		{"version: 2\n", "version", "newer than this expertd"},
		{"version: one\n", "version", "whole number"},
		{"log:\n  level: loud\n", "log.level", "must be one of debug, info, warn, error"},
		{"p2p:\n  listen: [/ip4/0.0.0.0/tcp/4001, /ip4/1.2.3/tcp/1]\n", "p2p.listen[1]", `invalid multiaddr "/ip4/1.2.3/tcp/1"`},
		{"p2p:\n  listen: [/ip4/0.0.0.0/tcp/4001/p2p/12D3KooWGRUVh7V3ghYYZRfEgQPGc6ZUBHVohDXbhwuqa1FtZ9sb]\n", "p2p.listen[0]", "must not name a peer"},
		{"p2p:\n  bootstrap: [/ip4/192.0.2.1/tcp/4001]\n", "p2p.bootstrap[0]", "must end in /p2p/"},
		{"p2p:\n  relays: [nonsense]\n", "p2p.relays[0]", "invalid multiaddr"},
		{"p2p:\n  allow_peers: [nobody]\n", "p2p.allow_peers[0]", "invalid peer ID"},
		{"p2p:\n  announce: [/ip4/192.0.0.140/tcp]\n", "p2p.announce[0]", "invalid multiaddr"},
		{"p2p:\n  append_announce: [/ip4/192.0.0.140/tcp/4001/p2p/12D3KooWGRUVh7V3ghYYZRfEgQPGc6ZUBHVohDXbhwuqa1FtZ9sb]\n", "p2p.append_announce[0]", "name no peer"},
		{"p2p:\n  no_announce: [/ip4/10.0.0.0/ipcidr/33]\n", "p2p.no_announce", "more than the address has"},
		{"p2p:\n  relay_service:\n    max_circuit_bytes: -1\n", "p2p.relay_service.max_circuit_bytes", "negative"},
		{"p2p:\n  relay_service:\n    max_circuit_duration: 10ms\n", "p2p.relay_service.max_circuit_duration", "at least 1s"},
		{"p2p:\n  relay_service:\n    max_circuits: 0\n", "p2p.relay_service.max_circuits", "at least 1"},
		{"p2p:\n  relay_service:\n    max_reservations_per_ip: 0\n", "p2p.relay_service.max_reservations_per_ip", "at least 1"},
		{"p2p:\n  relay_service:\n    reservation_ttl: 1m\n", "p2p.relay_service.reservation_ttl", "at least 5m"},
		{"p2p:\n  psk_file: /nonexistent/swarm.key\n", "p2p.psk_file", "no such file"},
		{"p2p:\n  dht:\n    mode: peer\n", "p2p.dht.mode", "must be one of auto, server, client"},
		{"p2p:\n  conn_mgr:\n    low: 50\n    high: 40\n", "p2p.conn_mgr.low", "above p2p.conn_mgr.high"},
		{"p2p:\n  conn_mgr:\n    high: 300\n", "p2p.conn_mgr.high", "above p2p.resources.max_conns"},
		{"p2p:\n  conn_mgr:\n    grace: 20\n", "p2p.conn_mgr.grace", "has no unit"},
		{"p2p:\n  conn_mgr:\n    low: many\n", "p2p.conn_mgr.low", `"many" is not a whole number`},
		{"p2p:\n  resources:\n    max_memory: 256Mb/s\n", "p2p.resources.max_memory", "invalid size"},
		{"p2p:\n  resources:\n    max_memory: 1KiB\n", "p2p.resources.max_memory", "at least 1MiB"},
		{"p2p:\n  resources:\n    max_streams: 0\n", "p2p.resources.max_streams", "at least 1"},
		{"p2p:\n  mdns: maybe\n", "p2p.mdns", `"maybe" is not true or false`},
		{"api:\n  listen: localhost\n", "api.listen", "want host:port"},
		{"api:\n  listen: 127.0.0.1:99999\n", "api.listen", "port"},
		{"api:\n  listen: 0.0.0.0:5180\n", "api.token", "required when api.listen"},
		{"api:\n  allowed_hosts: [node1:5180]\n", "api.allowed_hosts[0]", "without a port"},
		{"api:\n  allowed_hosts: [\"*\"]\n", "api.allowed_hosts[0]", "not a host name"},
		{"api:\n  allowed_origins: [\"null\"]\n", "api.allowed_origins[0]", "not an origin"},
		{"api:\n  allowed_origins: [http://example.org/app]\n", "api.allowed_origins[0]", "not an origin"},
		{"store:\n  quota: -1\n", "store.quota", "negative"},
		{"store:\n  quota: lots\n", "store.quota", "invalid size"},
		{"store:\n  max_expert_size: 0\n", "store.max_expert_size", "at least 1 byte"},
		{"store:\n  max_output_size: -1\n", "store.max_output_size", "negative"},
		{"fetch:\n  max_providers: 0\n", "fetch.max_providers", "at least 1"},
		{"fetch:\n  streams_per_peer: -2\n", "fetch.streams_per_peer", "at least 1"},
		{"fetch:\n  idle_timeout: soon\n", "fetch.idle_timeout", "invalid duration"},
		{"fetch:\n  min_rate: 0\n", "fetch.min_rate", "at least 1 byte"},
		{"fetch:\n  find_timeout: -1s\n", "fetch.find_timeout", "must not be negative"},
		{"gossip:\n  reannounce: 1h\n", "gossip.reannounce", "shorter than gossip.ttl"},
		{"gossip:\n  ttl: 0s\n", "gossip.ttl", "positive"},
		{"gossip:\n  max_per_second: 0\n", "gossip.max_per_second", "at least 1"},
		{"gossip:\n  max_per_provider: 0\n", "gossip.max_per_provider", "at least 1"},
		{"gossip:\n  max_view_memory: 1KiB\n", "gossip.max_view_memory", "at least 1MiB"},
		{"gossip:\n  catalog_rate: 0\n", "gossip.catalog_rate", "positive"},
		{"compress:\n  density: 1.5\n", "compress.density", "(0, 1]"},
		{"compress:\n  alpha: big\n", "compress.alpha", "auto or a positive number"},
		{"compress:\n  scope: layer\n", "compress.scope", "must be one of global, tensor"},
		{"api:\n  listen: 127.0.0.1:0\n", "api.listen", "port 0 would pick a random port"},
		{"gossip:\n  reannounce: 30m\n", "gossip.reannounce", "shorter than gossip.ttl"},
		{"inference:\n  vllm_check: 500ms\n", "inference.vllm_check", "at least 1s"},
		{"inference:\n  vllm_url: 127.0.0.1:8000\n", "inference.vllm_url", "want http://host:port"},
		{"inference:\n  vllm_url: ftp://127.0.0.1:8000\n", "inference.vllm_url", "want http://host:port"},
		{"inference:\n  retry_backoff: 2m\n  retry_max_backoff: 1m\n", "inference.retry_backoff", "retry_backoff <= retry_max_backoff"},
		{"inference:\n  max_lora_rank: 20\n", "inference.max_lora_rank", "want one of"},
		{"inference:\n  server_adapters_dir: adapters\n", "inference.server_adapters_dir", "absolute path"},
		{"inference:\n  version_grace: 0s\n", "inference.version_grace", "positive"},
		{"inference:\n  dtype: f8\n", "inference.dtype", "f8"},
		{"inference:\n  want: [colour=blue]\n", "inference.want", "colour"},
		{"trust:\n  publishers: [nobody]\n", "trust.publishers[0]", "invalid peer ID"},
	} {
		_, err := Load(viper.New(), writeFile(t, tc.body))
		assertKeyError(t, tc.body, err, tc.key, tc.reason)
	}
}

func TestEnvValueErrorsNameTheirKey(t *testing.T) {
	isolate(t)
	t.Setenv("EXPERTD_P2P_LISTEN", "/ip4/127.0.0.1/tcp/1,/bad")
	_, err := Load(viper.New(), "")
	assertKeyError(t, "EXPERTD_P2P_LISTEN", err, "p2p.listen[1]", "invalid multiaddr")
}

func TestAllErrorsReported(t *testing.T) {
	isolate(t)
	_, err := Load(viper.New(), writeFile(t, "log:\n  level: x\nfetch:\n  max_providers: 0\n"))
	var keys []string
	for _, ke := range KeyErrors(err) {
		keys = append(keys, ke.Key)
	}
	if !slices.Equal(keys, []string{"log.level", "fetch.max_providers"}) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("keys %q from %v", keys, err)
	}

	// Values that do not decode are all reported too (before validation).
	_, err = Load(viper.New(), writeFile(t, "p2p:\n  conn_mgr:\n    low: many\n    grace: 20\nstore:\n  quota: lots\n"))
	keys = nil
	for _, ke := range KeyErrors(err) {
		keys = append(keys, ke.Key)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"p2p.conn_mgr.grace", "p2p.conn_mgr.low", "store.quota"}) {
		t.Fatalf("keys %q from %v", keys, err)
	}
}

func assertKeyError(t *testing.T, input string, err error, key, reason string) {
	t.Helper()
	if err == nil {
		t.Errorf("%q: no error, want %s: %s", input, key, reason)
		return
	}
	kes := KeyErrors(err)
	if len(kes) == 0 || kes[0].Key != key {
		t.Errorf("%q: error %q does not name key %s first", input, err, key)
		return
	}
	if !strings.Contains(err.Error(), key+": ") || !strings.Contains(kes[0].Err.Error(), reason) {
		t.Errorf("%q: error %q, want %q with %q", input, err, key+": ", reason)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("%q: error %q is not ErrInvalid", input, err)
	}
}
