package node

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/expertd/expertd/node/store"
)

// Errors a daemon meets when it starts are said in one line that names
// the problem and what to do; the cause stays wrapped for errors.Is.

// startupError is an error whose message replaces its cause's.
type startupError struct {
	msg string
	err error
}

func (e *startupError) Error() string { return e.msg }
func (e *startupError) Unwrap() error { return e.err }

// lockedErr explains a store already open in another process.
func lockedErr(dataDir string, err error) error {
	var le *store.LockedError
	if !errors.As(err, &le) {
		return err
	}
	who := "another process"
	if le.PID > 0 {
		who = "process " + strconv.Itoa(le.PID)
	}
	return &startupError{fmt.Sprintf("data directory %s is in use by %s (another expertd daemon?); stop it or use another --data-dir", dataDir, who), err}
}

// apiListenErr explains why api.listen could not be bound.
func apiListenErr(addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return &startupError{fmt.Sprintf("API address %s is in use (another expertd daemon?); set api.listen or --api to a free address", addr), err}
	}
	return &startupError{fmt.Sprintf("api.listen %s: %v", addr, err), err}
}

// uniqueAddrs drops repeated listen addresses: libp2p panics on a QUIC
// address given twice.
func uniqueAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if !slices.ContainsFunc(out, a.Equal) {
			out = append(out, a)
		}
	}
	return out
}

// checkListenFree binds each TCP and UDP port of addrs (port 0 aside) once,
// without SO_REUSEPORT, and closes it again. libp2p binds its listeners
// with SO_REUSEPORT, so a second daemon on the same port would start
// without a word and share the port with the first; a plain bind fails
// where another socket holds the port. Only a port in use is an error
// here: an address this host does not have (a simulated network's, say)
// is libp2p's to judge.
func checkListenFree(addrs []ma.Multiaddr) error {
	for _, a := range addrs {
		netw, host, err := manet.DialArgs(a)
		if err != nil {
			continue // not an IP address: libp2p reports it
		}
		_, port, err := net.SplitHostPort(host)
		if err != nil || port == "0" {
			continue
		}
		switch netw {
		case "tcp", "tcp4", "tcp6":
			ln, err := net.Listen(netw, host)
			if errors.Is(err, syscall.EADDRINUSE) {
				return listenErr(a, err)
			}
			if err == nil {
				ln.Close()
			}
		case "udp", "udp4", "udp6":
			pc, err := net.ListenPacket(netw, host)
			if errors.Is(err, syscall.EADDRINUSE) {
				return listenErr(a, err)
			}
			if err == nil {
				pc.Close()
			}
		}
	}
	return nil
}

func listenErr(a ma.Multiaddr, err error) error {
	return &startupError{fmt.Sprintf("p2p listen address %s is in use (another expertd daemon?); set p2p.listen or --listen to a free port", a), err}
}
