package p2p

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// noiseProposal is what a dialer's first write is: the multistream header
// and /noise.
var noiseProposal = append(bytes.Clone(mssHeader), "\x07/noise\n"...)

// TestOptimisticFirstFlight checks that a dialer sends Noise's first
// handshake message before the listener has answered anything: the round
// trip TCP saves. A listener that reads and never writes sees the proposal
// and more; without the optimism it would see the proposal alone.
func TestOptimisticFirstFlight(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	o := testOptions(t)
	o.ListenAddrs = nil
	h := newTestHost(t, o)

	other := testOptions(t) // a peer ID for the silent listener
	id, err := peer.IDFromPrivateKey(other.Identity)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := manet.FromNetAddr(ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dialed := make(chan error, 1)
	go func() { dialed <- h.Connect(ctx, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{addr}}) }()

	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(noiseProposal)+2) // + Noise's 2-byte frame length
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read %q then: %v (the dialer waits for an answer)", got, err)
	}
	if !bytes.HasPrefix(got, noiseProposal) {
		t.Fatalf("first flight %q, want the Noise proposal first", got)
	}
	c.Close()
	cancel()
	if err := <-dialed; err == nil {
		t.Fatal("dial to a silent listener succeeded")
	}
}

// stockHost is a go-libp2p host with its defaults on TCP and the given
// security (nil: go-libp2p's defaults, TLS first), serving an echo
// protocol.
func stockHost(t *testing.T, security ...libp2p.Option) host.Host {
	t.Helper()
	opts := []libp2p.Option{libp2p.Transport(tcp.NewTCPTransport), libp2p.ListenAddrs(loopTCP)}
	h, err := libp2p.New(append(opts, security...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.SetStreamHandler(echoProto, func(s network.Stream) {
		_, _ = io.Copy(s, s)
		_ = s.Close()
	})
	return h
}

const echoProto = "/expertd-test/echo/1.0.0"

// echo sends msg to p over a new stream and checks it comes back.
func echo(t *testing.T, h host.Host, p peer.ID, msg []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, p, echoProto)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo: got %d bytes, want the %d sent", len(got), len(msg))
	}
}

// TestOptimisticInterop dials go-libp2p hosts with their default security
// (TLS proposed first, Noise accepted) from a daemon host and back, and
// moves data both ways.
func TestOptimisticInterop(t *testing.T) {
	o := testOptions(t)
	o.ListenAddrs = []ma.Multiaddr{loopTCP}
	ours := newTestHost(t, o)
	ours.SetStreamHandler(echoProto, func(s network.Stream) {
		_, _ = io.Copy(s, s)
		_ = s.Close()
	})
	stock := stockHost(t)
	msg := bytes.Repeat([]byte("expertd"), 100_000)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ours.Connect(ctx, peer.AddrInfo{ID: stock.ID(), Addrs: stock.Addrs()}); err != nil {
		t.Fatalf("daemon -> go-libp2p: %v", err)
	}
	if got := ours.Network().ConnsToPeer(stock.ID())[0].ConnState().Security; got != "/noise" {
		t.Fatalf("security %q, want /noise", got)
	}
	echo(t, ours.Host, stock.ID(), msg)

	stock2 := stockHost(t)
	if err := stock2.Connect(ctx, peer.AddrInfo{ID: ours.ID(), Addrs: ours.Addrs()}); err != nil {
		t.Fatalf("go-libp2p -> daemon: %v", err)
	}
	echo(t, stock2, ours.ID(), msg)
}

// TestOptimisticRefused dials a peer that speaks TLS alone: the dial fails
// with ErrSecurityRefused and says what was proposed.
func TestOptimisticRefused(t *testing.T) {
	o := testOptions(t)
	o.ListenAddrs = nil
	ours := newTestHost(t, o)
	tlsOnly := stockHost(t, libp2p.Security(tls.ID, tls.New))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := ours.Connect(ctx, peer.AddrInfo{ID: tlsOnly.ID(), Addrs: tlsOnly.Addrs()})
	if !errors.Is(err, ErrSecurityRefused) {
		t.Fatalf("dial a TLS-only peer: %v, want ErrSecurityRefused", err)
	}
	if !bytes.Contains([]byte(err.Error()), []byte("/noise")) {
		t.Errorf("error %q does not name the proposed protocol", err)
	}
}

// pipeConn is one end of a net.Pipe as a manet.Conn.
type pipeConn struct{ net.Conn }

func (pipeConn) LocalMultiaddr() ma.Multiaddr  { return nil }
func (pipeConn) RemoteMultiaddr() ma.Multiaddr { return nil }

// exchange writes first through an optimisticConn, has the peer answer
// with answer and close, and returns what the optimisticConn's reader got
// after the answer the selector expects (the first write when it is a
// proposal), and the read error other than EOF.
func exchange(t testing.TB, first, answer []byte) ([]byte, error) {
	a, b := net.Pipe()
	c := newOptimisticConn(pipeConn{a}, "/noise")
	defer c.Close()
	go func() {
		defer b.Close()
		buf := make([]byte, len(first))
		if _, err := io.ReadFull(b, buf); err != nil {
			return
		}
		_, _ = b.Write(answer)
	}()
	if _, err := c.Write(first); err != nil {
		t.Fatal(err)
	}
	if proposes(first, "/noise") {
		got := make([]byte, len(first))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, first) {
			t.Fatalf("selector read %q, %v; want its proposal back at once", got, err)
		}
	}
	return io.ReadAll(c)
}

func TestOptimisticConn(t *testing.T) {
	tests := []struct {
		name                   string
		first, answer          []byte
		want                   []byte
		refused, notMSS, fails bool
	}{
		{name: "accepted", first: noiseProposal, answer: append(bytes.Clone(noiseProposal), "msg2"...), want: []byte("msg2")},
		{name: "refused", first: noiseProposal, answer: append(bytes.Clone(mssHeader), "\x03na\n"...), refused: true},
		{name: "not libp2p", first: noiseProposal, answer: []byte("HTTP/1.1 400 Bad Request\r\n"), notMSS: true},
		{name: "cut short", first: noiseProposal, answer: mssHeader, fails: true},
		{name: "not a proposal", first: []byte("24-byte nonce of a PSK.."), answer: []byte("anything"), want: []byte("anything")},
		{name: "two protocols", first: append(bytes.Clone(noiseProposal), "\x07/noise\n"...), answer: []byte("x"), want: []byte("x")},
		{name: "header alone", first: mssHeader, answer: []byte("y"), want: []byte("y")},
		{name: "another protocol", first: append(bytes.Clone(mssHeader), "\x0b/tls/1.0.0\n"...), answer: []byte("z"), want: []byte("z")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := exchange(t, tt.first, tt.answer)
			switch {
			case tt.refused:
				if !errors.Is(err, ErrSecurityRefused) {
					t.Fatalf("got %q, %v; want ErrSecurityRefused", got, err)
				}
			case tt.notMSS:
				if !errors.Is(err, ErrNotMultistream) {
					t.Fatalf("got %q, %v; want ErrNotMultistream", got, err)
				}
			case tt.fails:
				if err == nil || errors.Is(err, ErrSecurityRefused) || errors.Is(err, ErrNotMultistream) {
					t.Fatalf("got %q, %v; want a read error", got, err)
				}
			case err != nil || !bytes.Equal(got, tt.want):
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestOptimisticConnCloseWakesReader: a Read waiting for the first Write
// returns when the conn is closed (the upgrader closes it when its context
// ends).
func TestOptimisticConnCloseWakesReader(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := newOptimisticConn(pipeConn{a}, "/noise")
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read still waiting 10 s after Close")
	}
}

// TestOptimisticConnResumes: a read deadline that expires in the middle of
// the peer's answer fails that Read; the next one goes on checking from
// where it stopped.
func TestOptimisticConnResumes(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := newOptimisticConn(pipeConn{a}, "/noise")
	defer c.Close()
	rest := make(chan struct{})
	go func() {
		_, _ = io.ReadFull(b, make([]byte, len(noiseProposal)))
		_, _ = b.Write(noiseProposal[:10])
		<-rest
		_, _ = b.Write(append(bytes.Clone(noiseProposal[10:]), "msg2"...))
		b.Close()
	}()
	if _, err := c.Write(noiseProposal); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, len(noiseProposal))); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(make([]byte, 4)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with half an answer: %v, want the deadline", err)
	}
	close(rest)
	_ = c.SetReadDeadline(time.Time{})
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "msg2" {
		t.Fatalf("after the deadline: %q, %v; want msg2", got, err)
	}
}

// FuzzOptimisticAnswer feeds a peer's answer to a Noise proposal: the
// reader gets exactly what follows a correct answer, or an error.
func FuzzOptimisticAnswer(f *testing.F) {
	f.Add(append(bytes.Clone(noiseProposal), "msg2"...))
	f.Add(append(bytes.Clone(mssHeader), "\x03na\n"...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, answer []byte) {
		got, err := exchange(t, noiseProposal, answer)
		rest, ok := bytes.CutPrefix(answer, noiseProposal)
		switch {
		case ok && (err != nil || !bytes.Equal(got, rest)):
			t.Fatalf("correct answer then %q: read %q, %v", rest, got, err)
		case !ok && err == nil:
			t.Fatalf("answer %q accepted", answer)
		case !ok && !errors.Is(err, ErrSecurityRefused) && !errors.Is(err, ErrNotMultistream) && !errors.Is(err, io.ErrUnexpectedEOF):
			t.Fatalf("answer %q: %v", answer, err)
		}
	})
}
