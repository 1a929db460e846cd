package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/viper"
)

// TestAPITokenRequiredUnlessLoopback: api.listen needs api.token unless
// its host is a loopback IP or "localhost". A name (even one that starts
// like a loopback IP), the unspecified addresses, an empty host (every
// interface) and anything that does not parse as an IP need the token.
func TestAPITokenRequiredUnlessLoopback(t *testing.T) {
	for _, tc := range []struct {
		listen string
		open   bool // valid without a token
	}{
		{"127.0.0.1:5180", true},
		{"127.8.9.10:5180", true},
		{"localhost:5180", true},
		{"LocalHost:5180", true},
		{"[::1]:5180", true},
		{"0.0.0.0:5180", false},
		{"[::]:5180", false},
		{":5180", false},
		{"192.168.1.10:5180", false},
		{"myhost:5180", false},
		{"localhost.example.org:5180", false},
		{"127.0.0.1.nip.io:5180", false},
		{"[::ffff:127.0.0.1]:5180", true}, // Go listens on 127.0.0.1
		{"[fe80::1%lo]:5180", false},
	} {
		a := APIConfig{Listen: tc.listen}
		errs := a.validateListen()
		if tc.open != (len(errs) == 0) {
			t.Errorf("api.listen %q without a token: %v; want valid %v", tc.listen, errs, tc.open)
		}
		for _, err := range errs {
			if !strings.Contains(err.Error(), "api.token") {
				t.Errorf("api.listen %q: %v, not about api.token", tc.listen, err)
			}
		}
		a.Token = "secret"
		if errs := a.validateListen(); len(errs) > 0 {
			t.Errorf("api.listen %q with a token: %v", tc.listen, errs)
		}
	}
}

// TestBoundaryValuesAccepted: the edges of each documented range load.
func TestBoundaryValuesAccepted(t *testing.T) {
	isolate(t)
	for _, body := range []string{
		"compress:\n  density: 1\n", // any value in (0, 1]
		"gossip:\n  ttl: 30m\n  reannounce: 29m59s\n",
		"inference:\n  vllm_check: 0s\n", // never
		"inference:\n  vllm_check: 1s\n",
		"inference:\n  max_lora_rank: 512\n  retry_backoff: 1m\n  retry_max_backoff: 1m\n",
		"inference:\n  vllm_url: https://vllm.example.org:8443\n  server_adapters_dir: /adapters\n",
		"trust:\n  publishers: [\"*\", 12D3KooWGRUVh7V3ghYYZRfEgQPGc6ZUBHVohDXbhwuqa1FtZ9sb]\n",
	} {
		if _, err := Load(viper.New(), writeFile(t, body)); err != nil {
			t.Errorf("%q: %v", body, err)
		}
	}
}

// TestPrivateNetworkListensOnTCPOnly: with p2p.psk_file a listen address
// other than TCP is refused, since only TCP carries the pre-shared key.
func TestPrivateNetworkListensOnTCPOnly(t *testing.T) {
	isolate(t)
	psk := writeFile(t, "/key/swarm/psk/1.0.0/\n/base16/\n"+strings.Repeat("ab", 32)+"\n")
	body := "p2p:\n  psk_file: " + psk + "\n  listen: [/ip4/127.0.0.1/tcp/4001, %s]\n"
	for _, addr := range []string{"/ip4/127.0.0.1/udp/4001/quic-v1", "/ip4/127.0.0.1/tcp/4002/ws"} {
		_, err := Load(viper.New(), writeFile(t, fmt.Sprintf(body, addr)))
		assertKeyError(t, addr, err, "p2p.listen[1]", "protects TCP only")
	}
	if _, err := Load(viper.New(), writeFile(t, fmt.Sprintf(body, "/ip4/127.0.0.1/tcp/4002"))); err != nil {
		t.Fatalf("TCP only: %v", err)
	}
}
