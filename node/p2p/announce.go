package p2p

import (
	"fmt"
	"net"

	ma "github.com/multiformats/go-multiaddr"
)

// Announce says which addresses the host advertises (in identify, its
// signed peer record and so the DHT), with kubo's semantics
// (Addresses.Announce, AppendAnnounce and NoAnnounce in kubo's
// core/node/libp2p/addrs.go):
//   - Replace, when not empty, is advertised instead of what the host
//     listens on and observes (relay addresses included);
//   - Append is advertised beside them;
//   - Drop is never advertised: exact addresses, or ranges written
//     /ip4/<net>/ipcidr/<bits> (or /ip6/...), which also filter Replace and
//     Append.
//
// A forwarded port is announced with Append (or Replace):
// /ip4/<the router's public address>/tcp/4001.
type Announce struct {
	Replace []ma.Multiaddr
	Append  []ma.Multiaddr
	Drop    []ma.Multiaddr
}

func (a Announce) empty() bool {
	return len(a.Replace) == 0 && len(a.Append) == 0 && len(a.Drop) == 0
}

// factory returns the host's AddrsFactory for a.
func (a Announce) factory() (func([]ma.Multiaddr) []ma.Multiaddr, error) {
	filters := ma.NewFilters()
	exact := map[string]bool{}
	for _, d := range a.Drop {
		ipnet, ok, err := cidr(d)
		if err != nil {
			return nil, err
		}
		if ok {
			filters.AddFilter(*ipnet, ma.ActionDeny)
			continue
		}
		exact[string(d.Bytes())] = true
	}
	replace := a.Replace
	var appendAddrs []ma.Multiaddr
	for _, x := range a.Append {
		if !containsAddr(replace, x) {
			appendAddrs = append(appendAddrs, x)
		}
	}
	return func(all []ma.Multiaddr) []ma.Multiaddr {
		in := all
		if len(replace) > 0 {
			in = replace
		}
		out := make([]ma.Multiaddr, 0, len(in)+len(appendAddrs))
		for _, list := range [][]ma.Multiaddr{in, appendAddrs} {
			for _, x := range list {
				if len(x) == 0 || exact[string(x.Bytes())] || filters.AddrBlocked(x) {
					continue
				}
				out = append(out, x)
			}
		}
		return out
	}, nil
}

// cidr reads a /ip4/<net>/ipcidr/<bits> (or /ip6/...) range; ok is false
// for any other address, which Drop matches exactly.
func cidr(a ma.Multiaddr) (ipnet *net.IPNet, ok bool, err error) {
	if len(a) != 2 || a[1].Protocol().Code != ma.P_IPCIDR {
		return nil, false, nil
	}
	var ip net.IP
	switch a[0].Protocol().Code {
	case ma.P_IP4:
		ip = net.IP(a[0].RawValue()).To4()
	case ma.P_IP6:
		ip = net.IP(a[0].RawValue())
	default:
		return nil, false, fmt.Errorf("no-announce range %s: want /ip4/<net>/ipcidr/<bits> or /ip6/<net>/ipcidr/<bits>", a)
	}
	bits := int(a[1].RawValue()[0])
	if bits > 8*len(ip) {
		return nil, false, fmt.Errorf("no-announce range %s: %d bits is more than the address has", a, bits)
	}
	mask := net.CIDRMask(bits, 8*len(ip))
	return &net.IPNet{IP: ip.Mask(mask), Mask: mask}, true, nil
}

func containsAddr(list []ma.Multiaddr, a ma.Multiaddr) bool {
	for _, x := range list {
		if x.Equal(a) {
			return true
		}
	}
	return false
}

// ParseAnnounce parses the three lists of Announce.
func ParseAnnounce(replace, appendAddrs, drop []string) (Announce, error) {
	var a Announce
	var err error
	if a.Replace, err = ParseMultiaddrs(replace); err != nil {
		return Announce{}, fmt.Errorf("announce: %w", err)
	}
	if a.Append, err = ParseMultiaddrs(appendAddrs); err != nil {
		return Announce{}, fmt.Errorf("append announce: %w", err)
	}
	if a.Drop, err = ParseMultiaddrs(drop); err != nil {
		return Announce{}, fmt.Errorf("no announce: %w", err)
	}
	if _, err := a.factory(); err != nil {
		return Announce{}, err
	}
	return a, nil
}
