package p2p

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/internal/slogutil"
)

// MDNSServiceName is the DNS-SD service expertd nodes announce and browse,
// so that they find each other and not every libp2p node on the LAN.
const MDNSServiceName = "_expertd._udp"

const (
	mdnsConnectTimeout = 10 * time.Second
	mdnsMaxConnecting  = 4 // connection attempts at once; more finds are dropped
)

// mdnsNotifee connects to the peers that mDNS finds. It never blocks the
// mDNS resolver: each find gets its own bounded, timed attempt, and finds
// beyond mdnsMaxConnecting at once are dropped (the peer announces itself
// again later).
type mdnsNotifee struct {
	h   host.Host
	log *slog.Logger

	slots chan struct{}
	done  chan struct{} // closed by close: in-flight attempts are canceled

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func newMDNSNotifee(h host.Host, log *slog.Logger) *mdnsNotifee {
	return &mdnsNotifee{
		h:     h,
		log:   log,
		slots: make(chan struct{}, mdnsMaxConnecting),
		done:  make(chan struct{}),
	}
}

// HandlePeerFound implements mdns.Notifee.
func (n *mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == n.h.ID() || n.h.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	select {
	case n.slots <- struct{}{}:
	default:
		n.log.Debug("too many connection attempts, dropping a peer mDNS found", slogutil.Peer(ai.ID))
		return
	}
	n.wg.Go(func() {
		defer func() { <-n.slots }()
		ctx, cancel := context.WithTimeout(context.Background(), mdnsConnectTimeout)
		defer cancel()
		go func() { // close cancels the attempt
			select {
			case <-n.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := n.h.Connect(ctx, ai); err != nil {
			n.log.Debug("connecting to a peer mDNS found failed", slogutil.Peer(ai.ID), slogutil.Err(err))
			return
		}
		n.log.Info("connected to a peer mDNS found", slogutil.Peer(ai.ID))
	})
}

// close cancels the attempts in flight and waits for them.
func (n *mdnsNotifee) close() {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.done)
	}
	n.mu.Unlock()
	n.wg.Wait()
}
