package swarm

import (
	"fmt"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/x/simlibp2p"
	"github.com/marcopolo/simnet"
)

// scenario is one swarm to simulate: node 0 publishes, the others fetch.
type scenario struct {
	Name  string // its -scenarios key and subtest name
	Title string
	Nodes int
	// Every node has its own uplink and downlink of Bandwidth bits/s and
	// any two are RTT apart, but: every 1/Slow-th fetcher has
	// SlowBandwidth; the Far fetchers numbered last are FarRTT from the
	// others (RTT among themselves).
	Bandwidth, SlowBandwidth int
	RTT, FarRTT              time.Duration
	Slow                     float64 // share of the fetchers on SlowBandwidth
	Far                      int
	// Churn is the share of the fetchers killed (cut off, not closed)
	// once they hold KillAt of the expert: partial holders others fetch
	// from.
	Churn  float64
	KillAt float64
	// Real runs on the real clock (CPU time counts), not synctest's.
	Real bool
	// Params is the synthetic LoRA's parameter count (params: an expert
	// of about 10 MiB).
	Params int
}

// The link: every node has its own 20 Mbit/s uplink and downlink
// and every pair of nodes is 100 ms apart.
const (
	rtt       = 100 * time.Millisecond
	bandwidth = 20 * simlibp2p.OneMbps
	// params of the synthetic LoRA whose container, at density 2/3
	// (1.6 bits a parameter), is 10 MiB.
	params  = 52_428_800
	density = 0.6667
)

func base(name, title string, nodes int) scenario {
	return scenario{Name: name, Title: title, Nodes: nodes, Bandwidth: bandwidth, RTT: rtt, Params: params}
}

// scenarios are issue 18's swarms, by name.
func scenarios() []scenario {
	hetero := base("hetero", "Heterogeneous: 20% of the fetchers at 5 Mbit/s, 10 of them 300 ms away", 50)
	hetero.Slow, hetero.SlowBandwidth, hetero.Far, hetero.FarRTT = 0.2, 5*simlibp2p.OneMbps, 10, 300*time.Millisecond
	churn := base("churn", "Churn: 10% of the fetchers killed mid-fetch", 50)
	churn.Churn, churn.KillAt = 0.1, 0.3
	lan := base("lan", "LAN: 1 Gbit/s, 1 ms, real clock", 10)
	lan.Bandwidth, lan.RTT, lan.Real = 1000*simlibp2p.OneMbps, time.Millisecond, true
	return []scenario{
		base("50", "50 nodes", 50),
		base("200", "200 nodes", 200),
		hetero,
		churn,
		lan,
	}
}

// slow reports whether node i is on the slow link.
func (sc scenario) slow(i int) bool {
	if sc.Slow <= 0 || i == 0 {
		return false
	}
	every := int(1/sc.Slow + 0.5)
	return i%every == 0
}

// far reports whether node i is in the far group.
func (sc scenario) far(i int) bool { return sc.Far > 0 && i >= sc.Nodes-sc.Far }

// killed reports whether fetcher i is to be killed mid-fetch.
func (sc scenario) killed(i int) bool {
	if sc.Churn <= 0 || i == 0 {
		return false
	}
	every := int(1/sc.Churn + 0.5)
	return i%every == every/2
}

func (sc scenario) bw(i int) int {
	if sc.slow(i) {
		return sc.SlowBandwidth
	}
	return sc.Bandwidth
}

func (sc scenario) link(i int) simnet.NodeBiDiLinkSettings {
	return simnet.NodeBiDiLinkSettings{
		Uplink:   simnet.LinkSettings{BitsPerSecond: sc.bw(i)},
		Downlink: simnet.LinkSettings{BitsPerSecond: sc.bw(i)},
	}
}

// rttBetween is the round trip between nodes i and j.
func (sc scenario) rttBetween(i, j int) time.Duration {
	if sc.far(i) != sc.far(j) {
		return sc.FarRTT
	}
	return sc.RTT
}

// addr is node i's address on the simulated network.
func addr(i int) net.IP { return simnet.IntToPublicIPv4(i) }

// latency is the network's one-way delay between two addresses.
func (sc scenario) latency() func(*simnet.Packet) time.Duration {
	return func(p *simnet.Packet) time.Duration {
		return sc.rttBetween(index(p.From), index(p.To)) / 2
	}
}

// index is the node whose address is a (the inverse of addr for fewer
// than 65535 nodes), or -1.
func index(a net.Addr) int {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return -1
	}
	ip := u.IP.To4()
	if ip == nil {
		return -1
	}
	return (int(ip[2])<<8 | int(ip[3])) - 1
}

// floor is node i's fetch of size bytes alone from the publisher: the
// bytes over the slower of the two links and two round trips.
func (sc scenario) floor(i int, size uint64) time.Duration {
	bw := min(sc.bw(i), sc.bw(0))
	return time.Duration(float64(size)*8/float64(bw)*float64(time.Second)) + 2*sc.rttBetween(0, i)
}

func (sc scenario) String() string {
	return fmt.Sprintf("%s (%d nodes)", sc.Name, sc.Nodes)
}
