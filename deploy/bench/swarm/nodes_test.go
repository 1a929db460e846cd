package swarm

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/marcopolo/simnet"
	"github.com/spf13/viper"

	"github.com/expertd/expertd/compress/synth"
	"github.com/expertd/expertd/node"
	"github.com/expertd/expertd/node/config"
)

// simNode is a real node on the simulated network.
type simNode struct {
	*node.Node
	up  *uplinkMeter
	bw  int    // its links' bits/s
	dir string // its data dir
}

// newNetwork starts a simulated network for sc, closed when the test ends
// (after the nodes, as cleanups run last first).
func newNetwork(t *testing.T, sc scenario) *simnet.Simnet {
	nw := &simnet.Simnet{LatencyFunc: sc.latency()}
	nw.Start()
	t.Cleanup(nw.Close)
	return nw
}

// startNodes starts sc's nodes on nw; node i bootstraps to node 0 and to
// up to two others started before it. They stop when the test ends.
func startNodes(t *testing.T, nw *simnet.Simnet, sc scenario) []*simNode {
	t.Helper()
	var ns []*simNode
	for i := range sc.Nodes {
		var boot []string
		for _, j := range []int{0, i - 1, i / 2} {
			if j >= 0 && j < i && !slices.Contains(boot, ns[j].Identity().Addrs[0]) {
				boot = append(boot, ns[j].Identity().Addrs[0])
			}
		}
		v := viper.New()
		dir := t.TempDir()
		v.Set("data_dir", dir)
		v.Set("api.listen", "127.0.0.1:1") // unused: WithoutAPI
		v.Set("p2p.listen", []string{fmt.Sprintf("/ip4/%s/udp/8000/quic-v1", addr(i))})
		v.Set("p2p.mdns", false)
		v.Set("p2p.nat_port_map", false)
		v.Set("p2p.hole_punching", false)
		v.Set("p2p.autonat", false)
		v.Set("p2p.dht.mode", "server")
		v.Set("p2p.bootstrap", boot)
		for _, kv := range strings.Split(*set, ",") {
			if k, val, ok := strings.Cut(kv, "="); ok {
				v.Set(k, val)
			}
		}
		cfg, err := config.Load(v, "")
		if err != nil {
			t.Fatal(err)
		}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		if *debug {
			log = slog.New(slog.NewTextHandler(testWriter{t, i}, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		up := new(uplinkMeter)
		n, err := node.New(context.Background(), cfg, log, node.WithoutAPI(), node.WithHostOptions(
			quicSimnet(nw, sc.link(i), up),
			// As x/simlibp2p: identify's address discovery stalls synctest.
			libp2p.DisableIdentifyAddressDiscovery(),
		))
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Serve(ctx) }()
		t.Cleanup(func() {
			cancel()
			<-done
			n.Close()
		})
		ns = append(ns, &simNode{Node: n, up: up, bw: sc.bw(i), dir: dir})
	}
	return ns
}

type testWriter struct {
	t *testing.T
	i int
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("node %d: %s", w.i, p)
	return len(p), nil
}

// adapterDir writes a synthetic LoRA of n parameters (params: one that
// compresses to about 10 MiB).
func adapterDir(t *testing.T, n int) string {
	dir := filepath.Join(t.TempDir(), "lora")
	if err := synth.WriteLoRA(dir, n, 7); err != nil {
		t.Fatal(err)
	}
	return dir
}
