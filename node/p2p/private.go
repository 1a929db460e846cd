package p2p

import (
	"fmt"
	"os"
	"slices"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"
)

// LoadPSK reads a private network key in the swarm.key format kubo and
// go-libp2p use:
//
//	/key/swarm/psk/1.0.0/
//	/base16/
//	<64 hex digits>
func LoadPSK(path string) (pnet.PSK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("private network key: %w", err)
	}
	defer f.Close()
	psk, err := pnet.DecodeV1PSK(f)
	if err != nil {
		return nil, fmt.Errorf("private network key %s: %w", path, err)
	}
	return psk, nil
}

// allowGater lets only listed peers connect, in either direction. Inbound
// connections are checked once the security handshake has authenticated
// the remote peer; outbound dials are refused up front.
type allowGater struct{ allow []peer.ID }

func (g allowGater) allowed(p peer.ID) bool { return slices.Contains(g.allow, p) }

func (g allowGater) InterceptPeerDial(p peer.ID) bool                 { return g.allowed(p) }
func (g allowGater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allowed(p) }
func (g allowGater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g allowGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allowed(p)
}
func (g allowGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
