package natlab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The lab's links have no rate of their own: a veth carries what the CPUs
// can push, so transfers are bound by CPU. Far-apart sites are bound by
// their links instead; -wan-rate gives every link to the internet a rate.
var wanRate = flag.String("wan-rate", "", "TestNATLab: shape R's and each router's link to the internet to this rate, each way (tc tbf; e.g. 100mbit); unshaped by default")

// rate is a link's rate in bits per second; 0: unshaped.
type rate int64

// parseRate reads a rate as tc writes it: a number and bit, kbit, mbit or
// gbit (powers of 1000); "" is 0, unshaped.
func parseRate(s string) (rate, error) {
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}
	low := strings.ToLower(strings.TrimSpace(s))
	for _, u := range units {
		if num, ok := strings.CutSuffix(low, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil || v*u.mult < 8000 || v*u.mult > 100e9 {
				break
			}
			return rate(v * u.mult), nil
		}
	}
	return 0, fmt.Errorf("rate %q: want a number and bit, kbit, mbit or gbit, from 8kbit to 100gbit (e.g. 100mbit)", s)
}

func (r rate) String() string {
	if r == 0 {
		return "unshaped"
	}
	return fmt.Sprintf("%g Mbit/s", float64(r)/1e6)
}

// wanLinks are the two ends of each link to the internet: the role's
// "wan" veth, and its peer, the bridge port in "inet".
func (tp *topo) wanLinks() (ends [][2]string) {
	for _, role := range []string{"r", "ra", "rb"} {
		ends = append(ends, [2]string{tp.ns(role), "wan"}, [2]string{tp.ns("inet"), role + "-port"})
	}
	return ends
}

// shapeWAN limits R's and each router's link to the internet to r in
// both directions: a token bucket (tbf) on what leaves each end of the
// veth. (Shaping what arrives would need an ifb device; shaping the
// peer's egress is the same.) The bucket holds 64 KiB, a veth's largest
// segment, and up to 50 ms of packets queue behind it, as in a router.
func (tp *topo) shapeWAN(t *testing.T, r rate) {
	t.Helper()
	for _, e := range tp.wanLinks() {
		run(t, "tc", "-n", e[0], "qdisc", "replace", "dev", e[1], "root", "tbf",
			"rate", strconv.FormatInt(int64(r), 10)+"bit", "burst", "64kb", "latency", "50ms")
	}
}

// linkCheck is what plain TCP gets through the lab's internet, in bits
// per second: from A to R (A's link up, R's down) and from R to B (R's
// link up, B's down).
type linkCheck struct{ aToR, rToB float64 }

func (c linkCheck) String() string {
	return fmt.Sprintf("A→R %.1f, R→B %.1f Mbit/s", c.aToR/1e6, c.rToB/1e6)
}

// checkPort is where checkWAN's receiver listens on R, before the daemons
// start.
const checkPort = "5999"

// checkWAN sends n bytes over TCP from A to R, then from R to B (B
// dials, as it is behind NAT), each timed by its receiver from the
// connection to the last byte.
func (tp *topo) checkWAN(t *testing.T, n int64) linkCheck {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := listenNetns(tp.ns("r"), "tcp", net.JoinHostPort(ipR, checkPort))
	if err != nil {
		t.Fatalf("link check: %v", err)
	}
	defer l.Close()
	deadline, _ := ctx.Deadline()
	if err := l.(*net.TCPListener).SetDeadline(deadline); err != nil {
		t.Fatalf("link check: %v", err)
	}
	dial := func(role string) (net.Conn, error) {
		c, err := dialNetns(ctx, tp.ns(role), "tcp", l.Addr().String())
		if err != nil {
			return nil, err
		}
		return c, c.SetDeadline(deadline)
	}
	accept := func() (net.Conn, error) {
		c, err := l.Accept()
		if err != nil {
			return nil, err
		}
		return c, c.SetDeadline(deadline)
	}
	// One way: the sender opens its end with open and writes, the
	// receiver opens its end with recv and times it.
	oneWay := func(name string, open, recv func() (net.Conn, error)) float64 {
		sent := make(chan error, 1)
		go func() { sent <- send(open, n) }()
		bps, err := receive(recv, n)
		if err != nil {
			l.Close() // a sender still waiting to accept gives up
		}
		if err = errors.Join(err, <-sent); err != nil {
			t.Fatalf("link check %s: %v", name, err)
		}
		return bps
	}
	return linkCheck{
		aToR: oneWay("A→R", func() (net.Conn, error) { return dial("a") }, accept),
		rToB: oneWay("R→B", accept, func() (net.Conn, error) { return dial("b") }),
	}
}

// send writes n bytes on the connection open returns, then closes it.
func send(open func() (net.Conn, error), n int64) error {
	c, err := open()
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	for left := n; left > 0; left -= int64(len(buf)) {
		if _, err := c.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	return nil
}

// receive reads the connection open returns to its end and returns the
// rate it came at, in bits per second; it must bring n bytes.
func receive(open func() (net.Conn, error), n int64) (float64, error) {
	c, err := open()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	got, err := io.Copy(io.Discard, c)
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("receive: %w", err)
	}
	if got != n {
		return 0, fmt.Errorf("received %d bytes, want %d", got, n)
	}
	return float64(n) * 8 / took.Seconds(), nil
}

// wanRateFlag is -wan-rate, read.
func wanRateFlag(t *testing.T) rate {
	t.Helper()
	r, err := parseRate(*wanRate)
	if err != nil {
		t.Fatalf("-wan-rate: %v", err)
	}
	return r
}

// checkBytes is what checkWAN sends: two seconds' worth at rate r, or
// 64 MiB over unshaped links.
func checkBytes(r rate) int64 {
	if r == 0 {
		return 64 << 20
	}
	return max(int64(r)/8*2, 1<<20)
}

func TestParseRate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want rate
		err  bool
	}{
		{"", 0, false},
		{"100mbit", 100e6, false},
		{"1.5Gbit", 1.5e9, false},
		{"500kbit", 500e3, false},
		{"8000bit", 8000, false},
		{"100", 0, true},      // no unit
		{"100mbps", 0, true},  // bytes, not tc's bits
		{"mbit", 0, true},     // no number
		{"-5mbit", 0, true},   // negative
		{"1bit", 0, true},     // too slow to shape
		{"200gbit", 0, true},  // beyond what tbf is for here
		{"100 mbit", 0, true}, // tc takes no space either
	} {
		got, err := parseRate(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("parseRate(%q) = %v, %v; want %v, error %v", c.in, got, err, c.want, c.err)
		}
	}
}
