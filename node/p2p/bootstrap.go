package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/internal/slogutil"
)

// BootstrapTimeout bounds the connection attempt to one bootstrap peer.
const BootstrapTimeout = 15 * time.Second

// ErrBootstrap is returned by Bootstrap when no bootstrap peer could be reached.
var ErrBootstrap = errors.New("no bootstrap peer reachable")

// Bootstrap connects to the bootstrap peers concurrently, each attempt
// bounded by BootstrapTimeout and ctx, logs the ones that fail, and starts a
// refresh of the DHT's routing table. It does not wait for the refresh: the
// routing table fills as connected peers answer, and the DHT keeps
// refreshing it. It returns ErrBootstrap (joined with each peer's error) only
// when there are bootstrap peers and none was reached; the host stays usable
// either way, since mDNS or peers that dial in may still connect it.
func (n *Host) Bootstrap(ctx context.Context) error {
	var (
		mu   sync.Mutex
		errs []error
		ok   int
		wg   sync.WaitGroup
	)
	for _, ai := range n.opts.Bootstrap {
		if ai.ID == n.ID() {
			continue
		}
		wg.Go(func() {
			err := n.connect(ctx, ai, BootstrapTimeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				n.log.Warn("bootstrap peer unreachable", slogutil.Peer(ai.ID), "addrs", ai.Addrs, slogutil.Err(err))
				errs = append(errs, fmt.Errorf("%s: %w", ai.ID, err))
				return
			}
			ok++
		})
	}
	wg.Wait()
	if err := n.DHT.Bootstrap(ctx); err != nil {
		return fmt.Errorf("bootstrap: dht: %w", err)
	}
	if len(errs) > 0 && ok == 0 {
		return fmt.Errorf("bootstrap: %w", errors.Join(append([]error{ErrBootstrap}, errs...)...))
	}
	n.log.Info("bootstrapped", "connected", ok, "failed", len(errs), "routing_table", n.DHT.RoutingTable().Size())
	return nil
}

// connect dials ai, bounded by timeout and ctx.
func (n *Host) connect(ctx context.Context, ai peer.AddrInfo, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return n.Connect(ctx, ai)
}
