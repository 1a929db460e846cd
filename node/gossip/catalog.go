package gossip

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	gproto "google.golang.org/protobuf/proto"

	pb "github.com/expertd/expertd/proto"

	"github.com/expertd/expertd/internal/slogutil"
)

// CatalogProtocol is the stream protocol of catalog exchanges. The side
// that opens a stream sends nothing (it closes its write side) and reads
// length-prefixed pb.Catalog frames until EOF: the experts the other side
// provides.
const CatalogProtocol protocol.ID = "/expertd/catalog/1.0.0"

const (
	// maxCatalogFrame bounds one Catalog frame; a frame always has room
	// for one entry of MaxMessageSize.
	maxCatalogFrame = 256 << 10
	// maxPulls bounds the catalog pulls run at once.
	maxPulls = 4
	// A pull whose stream the peer reset (it was serving MaxServing
	// catalogs already, say) is tried again while the peer stays
	// connected, after pullRetry, then twice that: pullTries in all. A
	// pull that timed out is not.
	pullTries = 3
	pullRetry = 2 * time.Second
)

// pullLimit bounds the catalog pulls of one peer: a peer that reconnects
// in a loop would otherwise keep the pulls busy with its catalog while
// those of peers new to this node wait. After a few, what it holds comes
// with its re-announcements.
var pullLimit = RateLimit{Rate: 1.0 / 20, Burst: 3}

// subscribeConnections subscribes to connectedness changes.
func (s *Service) subscribeConnections() (event.Subscription, error) {
	sub, err := s.host.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged), eventbus.Name("expertd-gossip"))
	if err != nil {
		return nil, fmt.Errorf("gossip: subscribing to connection events: %w", err)
	}
	return sub, nil
}

// pullLoop pulls the catalog of each peer connected now and of each peer
// that connects later, each in its own goroutine, at most maxPulls at
// once and one per peer at a time, so the event bus is never kept waiting.
func (s *Service) pullLoop(ctx context.Context, conns event.Subscription) {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, maxPulls)
	self := s.host.ID()
	start := func(p peer.ID) {
		if p == self || !s.claimPull(p) {
			return
		}
		wg.Go(func() {
			defer s.releasePull(p)
			pctx := ctx
			for try := 1; ; try++ {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				err := s.pullLogged(pctx, p)
				<-sem
				if try == pullTries || !resetByPeer(err) {
					return
				}
				t := time.NewTimer(time.Duration(try) * pullRetry)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return
				}
				if s.host.Network().Connectedness(p) != network.Connected {
					return // gone: its next connection pulls anew
				}
				pctx = network.WithNoDial(ctx, "catalog pull retry")
			}
		})
	}
	for _, p := range s.host.Network().Peers() {
		if s.host.Network().Connectedness(p) == network.Connected {
			start(p)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-conns.Out():
			if !ok {
				return
			}
			if e, ok := ev.(event.EvtPeerConnectednessChanged); ok && e.Connectedness == network.Connected {
				start(e.Peer)
			}
		}
	}
}

// resetByPeer reports whether err is a stream the other side reset (a
// catalog server that was busy), not one this side reset (a timeout).
func resetByPeer(err error) bool {
	var se *network.StreamError
	return errors.As(err, &se) && se.Remote
}

// claimPull reports whether p's catalog is to be pulled now: no pull of
// it runs, and it has a token of pullLimit, which it spends.
func (s *Service) claimPull(p peer.ID) bool {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pulling[p] || !s.pullTokens.allows(p, now) {
		return false
	}
	s.pullTokens.take(p, now)
	s.pulling[p] = true
	return true
}

func (s *Service) releasePull(p peer.ID) {
	s.mu.Lock()
	delete(s.pulling, p)
	s.mu.Unlock()
}

// pullLogged pulls p's catalog, counting and logging the outcome, and
// returns the error of the pull.
func (s *Service) pullLogged(ctx context.Context, p peer.ID) error {
	accepted, rejected, err := s.pull(ctx, p)
	s.stats.catalogAccepted.Add(uint64(accepted))
	s.stats.catalogRejected.Add(uint64(rejected))
	switch {
	case err == nil:
		s.stats.pulls.Add(1)
		s.log.Debug("pulled catalog", slogutil.Peer(p), "accepted", accepted, "rejected", rejected)
	case ctx.Err() != nil:
	case errors.Is(err, ErrCatalog):
		s.stats.pullErrors.Add(1)
		s.log.Warn("bad catalog", slogutil.Peer(p), "accepted", accepted, slogutil.Err(err))
	default: // often a peer that does not speak the protocol, or left
		s.stats.pullErrors.Add(1)
		s.log.Debug("pulling catalog", slogutil.Peer(p), slogutil.Err(err))
	}
	return err
}

// pull reads p's catalog into the view. It accepts only entries whose
// provider is p, checked like topic messages, at most MaxCatalog of them.
func (s *Service) pull(ctx context.Context, p peer.ID) (accepted, rejected int, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ExchangeTimeout)
	defer cancel()
	st, err := s.host.NewStream(ctx, p, CatalogProtocol)
	if err != nil {
		return 0, 0, err
	}
	defer context.AfterFunc(ctx, func() { _ = st.Reset() })()
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	if err := st.CloseWrite(); err != nil {
		_ = st.Reset()
		return 0, 0, err
	}
	accepted, rejected, err = s.readCatalog(st, p, time.Now, func(c checked, now time.Time) {
		s.view.add(c, p)
		s.noteCatalog(c, now)
	})
	if errors.Is(err, errPullLimited) {
		_ = st.Reset()
		return accepted, rejected, nil
	}
	if err != nil {
		_ = st.Reset()
		return accepted, rejected, err
	}
	_ = st.Close()
	return accepted, rejected, nil
}

// readCatalog reads the catalog p serves on r, an untrusted stream, until
// EOF: it checks each entry as of now() when its frame arrives
// (checkEntry) and passes those that pass to add, with that time, until
// catalogAdmits refuses one: then it stops with errPullLimited (and counts
// the entry in Stats.CatalogEntriesLimited). It returns how many entries
// it accepted and rejected, and fails with ErrCatalog on a malformed or
// oversized frame or past MaxCatalog entries, or with the error of a read.
func (s *Service) readCatalog(r io.Reader, p peer.ID, now func() time.Time, add func(checked, time.Time)) (accepted, rejected int, err error) {
	br := bufio.NewReader(r)
	var buf []byte
	var firstErr error
	n := 0
	for {
		var cat pb.Catalog
		err := readMsg(br, &cat, maxCatalogFrame, &buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return accepted, rejected, err
		}
		t := now()
		for _, m := range cat.GetEntries() {
			if n++; n > s.opts.MaxCatalog {
				return accepted, rejected, fmt.Errorf("%w: more than %d entries", ErrCatalog, s.opts.MaxCatalog)
			}
			if !s.catalogAdmits(m, p, t) {
				// p can bring nothing new for now: the rest would be read,
				// decoded and skipped; refreshes of what it holds come
				// with its re-announcements.
				s.stats.entriesLimited.Add(1)
				return accepted, rejected, errPullLimited
			}
			c, err := s.checkEntry(m, p, t)
			if err != nil {
				rejected++
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			accepted++
			add(c, t)
		}
	}
	if firstErr != nil {
		s.log.Debug("rejected catalog entries", slogutil.Peer(p), "rejected", rejected, "first", firstErr)
	}
	return accepted, rejected, nil
}

// errPullLimited ends a catalog pull from a peer that can bring nothing
// new for now (see catalogAdmits); it is not a failure of the pull.
var errPullLimited = errors.New("gossip: catalog pull stopped at the peer's limits")

// catalogAdmits reports whether a catalog entry from p, received at now,
// is worth checking: p is known to hold its expert (a refresh), or holds
// fewer than MaxPerProvider experts and has a token of CatalogEntryLimit
// left, which it spends. It comes before checkEntry, whose signature
// checks are what a flood of entries would cost.
func (s *Service) catalogAdmits(m *pb.Announcement, p peer.ID, now time.Time) bool {
	c, err := cid.Cast(m.GetCid())
	if err != nil {
		return true // for checkEntry to reject
	}
	if known, ok := s.view.admits(c, p); known || !ok {
		return known
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.entries.allows(p, now) {
		return false
	}
	s.entries.take(p, now)
	return true
}

// checkEntry checks a catalog entry from p as the topic validator checks a
// message p signed, and records its line's version.
func (s *Service) checkEntry(m *pb.Announcement, p peer.ID, now time.Time) (checked, error) {
	if n := gproto.Size(m); n > MaxMessageSize {
		return checked{}, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, n, MaxMessageSize)
	}
	a, err := fromWire(m)
	if err != nil {
		return checked{}, err
	}
	c, err := verify(a, p, now, s.opts.TTL)
	if err != nil {
		return checked{}, err
	}
	if err := s.checkLine(c, p, now, true); err != nil {
		return checked{}, err
	}
	return c, nil
}

// serveCatalog is the stream handler: it writes this node's catalog, to
// at most MaxServing peers at once and to each as catalogAllowed says.
func (s *Service) serveCatalog(st network.Stream) {
	if s.serving.Add(1) > int32(s.opts.MaxServing) {
		s.serving.Add(-1)
		s.stats.serveErrors.Add(1)
		_ = st.Reset()
		return
	}
	defer s.serving.Add(-1)
	if !s.catalogAllowed(st.Conn().RemotePeer(), st.Conn().Stat().Opened) {
		s.stats.catalogLimited.Add(1)
		s.stats.serveErrors.Add(1)
		_ = st.Reset()
		return
	}
	if err := s.writeCatalog(st); err != nil {
		s.stats.serveErrors.Add(1)
		s.log.Debug("serving catalog", slogutil.Peer(st.Conn().RemotePeer()), slogutil.Err(err))
		_ = st.Reset()
		return
	}
	s.stats.served.Add(1)
	_ = st.Close()
}

// catalogAllowed reports whether p may have the catalog on a connection
// opened at opened. The first catalog stream of each connection is served:
// peers pull once a connection, and one that reconnects after a cut must
// get what it missed. Further streams on a connection spend p's
// CatalogLimit tokens.
func (s *Service) catalogAllowed(p peer.ID, opened time.Time) bool {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.catalogConn[p]; !ok || opened.After(last) {
		s.catalogConn[p] = opened
		return true
	}
	if !s.catalogs.allows(p, now) {
		return false
	}
	s.catalogs.take(p, now)
	return true
}

// writeCatalog writes the catalog to st.
func (s *Service) writeCatalog(st network.Stream) error {
	now := time.Now()
	_ = st.SetDeadline(now.Add(s.opts.ExchangeTimeout))
	skipped, lastErr, err := s.encodeCatalog(st, s.catalog(), now)
	if skipped > 0 {
		s.log.Debug("catalog entries not sent", "skipped", skipped, "last", lastErr)
	}
	return err
}

// encodeCatalog writes entries, stamped as this node's as of now, to w in
// frames of at most maxCatalogFrame bytes, the first MaxCatalog valid
// ones; it returns how many invalid entries it skipped, and why the last
// one was.
func (s *Service) encodeCatalog(w io.Writer, entries []Announcement, now time.Time) (skipped int, lastErr, err error) {
	bw := bufio.NewWriter(w)
	var (
		frame pb.Catalog
		buf   []byte
		size  int
		sent  int
	)
	flush := func() error {
		var err error
		buf, err = pb.WriteFrame(bw, &frame, buf)
		frame.Entries, size = frame.Entries[:0], 0
		return err
	}
	for _, a := range entries {
		if sent == s.opts.MaxCatalog {
			break
		}
		a = s.stamp(a, now)
		if err := a.Validate(); err != nil {
			skipped, lastErr = skipped+1, err
			continue
		}
		m := toWire(a)
		n := gproto.Size(m)
		if n > MaxMessageSize {
			skipped, lastErr = skipped+1, fmt.Errorf("%w: %s: %d bytes", ErrTooLarge, a.CID, n)
			continue
		}
		n += 1 + binary.MaxVarintLen32 // tag and length inside the frame
		if size+n > maxCatalogFrame {
			if err := flush(); err != nil {
				return skipped, lastErr, err
			}
		}
		frame.Entries = append(frame.Entries, m)
		size += n
		sent++
	}
	if len(frame.Entries) > 0 {
		if err := flush(); err != nil {
			return skipped, lastErr, err
		}
	}
	return skipped, lastErr, bw.Flush()
}

// readMsg reads one catalog frame of at most limit bytes into m, reusing
// *buf (see pb.ReadFrame). It returns io.EOF only at a clean end between
// frames, ErrCatalog for a malformed or oversized frame, and other read
// errors wrapped.
func readMsg(r *bufio.Reader, m gproto.Message, limit int, buf *[]byte) error {
	err := pb.ReadFrame(r, m, limit, buf)
	switch {
	case err == nil || err == io.EOF:
		return err
	case errors.Is(err, pb.ErrBadFrame):
		return fmt.Errorf("%w: %w", ErrCatalog, err)
	}
	return fmt.Errorf("gossip: catalog: %w", err)
}
