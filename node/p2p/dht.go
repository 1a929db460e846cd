package p2p

import (
	"context"
	"errors"
	"fmt"

	cid "github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// dhtOptions configures expertd's DHT: its own protocol prefix, provider
// records only (no values), and the address policy of AllowPrivateAddrs.
func dhtOptions(o *Options) []dht.Option {
	mode := dht.ModeAutoServer
	switch o.DHTMode {
	case DHTServer:
		mode = dht.ModeServer
	case DHTClient:
		mode = dht.ModeClient
	}
	opts := []dht.Option{
		dht.ProtocolPrefix(o.ProtocolPrefix),
		dht.Mode(mode),
		dht.DisableValues(), // expertd stores provider records only
	}
	if len(o.Bootstrap) > 0 {
		// Used again whenever the routing table empties.
		opts = append(opts, dht.BootstrapPeers(o.Bootstrap...))
	}
	if !o.AllowPrivateAddrs {
		// What IPFS's public DHT does: only peers with public addresses
		// are queried or enter the routing table, and only public addresses
		// are kept in the peerstore, in provider records and in answers.
		opts = append(opts,
			dht.QueryFilter(dht.PublicQueryFilter),
			dht.RoutingTableFilter(dht.PublicRoutingTableFilter),
			dht.AddressFilter(func(addrs []ma.Multiaddr) []ma.Multiaddr {
				return ma.FilterAddrs(addrs, manet.IsPublicAddr)
			}),
		)
	}
	// With AllowPrivateAddrs, kad-dht's defaults apply: no query, routing
	// table or address filter, so loopback and LAN peers take part.
	return opts
}

// Provide announces in the DHT that this node holds c: the record goes to
// the peers closest to c, and must be renewed before it expires (48h).
func (n *Host) Provide(ctx context.Context, c cid.Cid) error {
	if err := n.DHT.Provide(ctx, c, true); err != nil {
		return fmt.Errorf("provide %s: %w", c, err)
	}
	return nil
}

// ErrNoProviders is returned by FindProviders when the DHT knows none.
var ErrNoProviders = errors.New("no providers found")

// FindProviders asks the DHT for up to max peers (all it finds if max <= 0)
// that provide c, other than this node. It returns when max are found, the
// lookup ends or ctx is done, with ErrNoProviders if none were found; the
// peers' addresses are kept in the peerstore for a while, and Connect to a
// peer returned without addresses asks the DHT for them.
func (n *Host) FindProviders(ctx context.Context, c cid.Cid, max int) ([]peer.AddrInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the lookup when we have enough
	count := max
	if count > 0 {
		count++ // this node may be one of them
	}
	var found []peer.AddrInfo
	for ai := range n.DHT.FindProvidersAsync(ctx, c, count) {
		if ai.ID == n.ID() {
			continue
		}
		found = append(found, ai)
		if max > 0 && len(found) == max {
			break
		}
	}
	if len(found) == 0 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("find providers of %s: %w: %w", c, ErrNoProviders, err)
		}
		return nil, fmt.Errorf("find providers of %s: %w", c, ErrNoProviders)
	}
	return found, nil
}
