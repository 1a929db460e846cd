package swarm

import (
	"net"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/marcopolo/simnet"
	"github.com/quic-go/quic-go"
	"go.uber.org/fx"
)

// uplinkMeter counts the bytes a node sends into the simulated network
// (everything on its uplink, protocol overhead included) and can cut the
// node off: a killed node's packets go nowhere, as after kill -9 (its
// peers learn of it only by its silence).
type uplinkMeter struct {
	sent atomic.Int64
	recv atomic.Int64 // bytes received (-trace: downlinks used)
	dead atomic.Bool
}

// countingConn is a node's endpoint, metered.
type countingConn struct {
	*simnet.SimConn
	m *uplinkMeter
}

func (c countingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.m.dead.Load() {
		return len(p), nil
	}
	n, err := c.SimConn.WriteTo(p, addr)
	c.m.sent.Add(int64(n))
	return n, err
}

func (c countingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.SimConn.ReadFrom(p)
	c.m.recv.Add(int64(n))
	return n, addr, err
}

// quicSimnet is x/simlibp2p's QUICSimnet with the node's endpoint wrapped
// in a countingConn.
func quicSimnet(nw *simnet.Simnet, link simnet.NodeBiDiLinkSettings, m *uplinkMeter) libp2p.Option {
	sel := &ipSelector{}
	return libp2p.QUICReuse(
		func(l fx.Lifecycle, resetKey quic.StatelessResetKey, tokenKey quic.TokenGeneratorKey, opts ...quicreuse.Option) (*quicreuse.ConnManager, error) {
			cm, err := quicreuse.NewConnManager(resetKey, tokenKey, opts...)
			if err != nil {
				return nil, err
			}
			l.Append(fx.StopHook(cm.Close))
			return cm, nil
		},
		quicreuse.OverrideSourceIPSelector(func() (quicreuse.SourceIPSelector, error) { return sel, nil }),
		quicreuse.OverrideListenUDP(func(_ string, addr *net.UDPAddr) (net.PacketConn, error) {
			sel.ip.Store(&addr.IP)
			return countingConn{nw.NewEndpoint(addr, link), m}, nil
		}),
	)
}

// ipSelector answers QUIC's source address question with the endpoint's
// one address (what simlibp2p's MockSourceIPSelector does).
type ipSelector struct{ ip atomic.Pointer[net.IP] }

func (s *ipSelector) PreferredSourceIPForDestination(*net.UDPAddr) (net.IP, error) {
	return *s.ip.Load(), nil
}
