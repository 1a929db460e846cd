package fetch

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/unixfs"
	pb "github.com/expertd/expertd/proto"
)

// outboardHash returns data's outboard and its hash.
func outboardHash(t testing.TB, data []byte) (ob, hash []byte) {
	t.Helper()
	ob, err := Outboard(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(ob)
	return ob, h[:]
}

// pieceServer is a provider of the fetch protocol that holds data whole
// and sends leaf 0 in two halves: the first at once, the second once
// release is closed. It answers requests as Provider does (header with the
// asked leaves, nodes unless skipped, the outboard if asked); the tests
// choose the bytes and the outboard it sends.
type pieceServer struct {
	layout   *unixfs.Layout
	data     []byte
	outboard []byte
	release  chan struct{}
	cut      bool // on release, reset the stream instead (gone mid-leaf)
}

// corruptLeaf0 returns data with a byte of leaf 0's second half flipped.
func corruptLeaf0(data []byte) []byte {
	bad := bytes.Clone(data)
	bad[unixfs.ChunkSize*3/4] ^= 1
	return bad
}

func (ps *pieceServer) handle(s network.Stream) {
	defer s.Close()
	var req pb.FetchRequest
	var buf []byte
	if err := pb.ReadFrame(bufio.NewReader(s), &req, maxRequestFrame, &buf); err != nil || req.GetWatch() {
		_ = s.Reset()
		return
	}
	n := uint64(len(ps.layout.Leaves))
	asked, err := wanted(&req, n)
	if err != nil {
		_ = s.Reset()
		return
	}
	hdr := &pb.FetchHeader{Size: ps.layout.Size, Leaves: n, Ranges: asked}
	if !req.GetSkipNodes() {
		for _, b := range ps.layout.Nodes {
			hdr.Nodes = append(hdr.Nodes, b.Data)
		}
	}
	if req.GetOutboard() {
		hdr.Outboard = ps.outboard
	}
	if _, err := pb.WriteFrame(s, &pb.FetchFrame{Body: &pb.FetchFrame_Header{Header: hdr}}, nil); err != nil {
		return
	}
	for _, r := range asked {
		for i := r.GetStart(); i < r.GetEnd(); i++ {
			l := ps.layout.Leaves[i]
			leaf := ps.data[l.Offset : l.Offset+l.Size]
			if i != 0 {
				if _, err := pb.WriteFrame(s, &pb.FetchFrame{Body: &pb.FetchFrame_Block{Block: &pb.Block{Index: i, Data: leaf}}}, nil); err != nil {
					return
				}
				continue
			}
			half := len(leaf) / 2 / PieceSize * PieceSize
			if _, err := s.Write(append(blockPrefix(0, len(leaf)), leaf[:half]...)); err != nil {
				return
			}
			<-ps.release
			if ps.cut {
				_ = s.Reset()
				return
			}
			if _, err := s.Write(leaf[half:]); err != nil {
				return
			}
		}
	}
}

func startPieceServer(t *testing.T, ps *pieceServer) host.Host {
	h := newHost(t)
	h.SetStreamHandler(ProtocolID, ps.handle)
	return h
}

// flowNode is a node's fetcher and provider sharing their flows, as
// node.New wires them.
type flowNode struct {
	h     host.Host
	store *memBlocks
	prov  *Provider
	fetch *Fetcher
}

func newFlowNode(t *testing.T) *flowNode {
	n := &flowNode{h: newHost(t), store: newMem()}
	n.prov = NewProvider(n.h, n.store, ProviderOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go n.prov.Serve(ctx)
	waitHandler(t, n.h)
	n.fetch = NewFetcher(n.h, n.store, Options{Stored: n.prov.Stored, Provider: n.prov})
	return n
}

// A node serves a leaf it is still receiving: while the publisher holds
// back the second half of leaf 0, a second fetcher gets the first half
// from the first, piece by piece, before the first holds the leaf; once
// released, both hold the expert.
func TestFlowServesLeafUnderWay(t *testing.T) {
	data := randomBytes(3<<20+5000, 41)
	src := newMem()
	l := addFile(t, src, data)
	ob, hash := outboardHash(t, data)
	ps := &pieceServer{layout: l, data: data, outboard: ob, release: make(chan struct{})}
	pub := startPieceServer(t, ps)
	f, d := newFlowNode(t), newFlowNode(t)
	connect(t, f.h, pub)
	connect(t, d.h, f.h)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	go func() {
		_, err := f.fetch.Fetch(ctx, l.Root, ids(pub), nil, WithOutboard(hash))
		errs <- err
	}()
	// D learns F once F holds the layout, as gossip would announce it.
	testutil.Eventually(t, 10*time.Second, "F to hold the layout", func() bool {
		_, err := localLayout(ctx, f.store, l.Root, 1<<30)
		return err == nil
	})
	go func() {
		_, err := d.fetch.Fetch(ctx, l.Root, ids(f.h), nil, WithOutboard(hash))
		errs <- err
	}()
	half := int(l.Leaves[0].Size) / 2 / PieceSize * PieceSize
	testutil.Eventually(t, 10*time.Second, "D to receive the first half of leaf 0 from F", func() bool {
		lf := d.prov.flows.leaf(l.Root, 0)
		return lf != nil && lf.verified() == half
	})
	if ok, _ := f.store.HasBlock(l.Leaves[0].Cid); ok {
		t.Fatal("F holds leaf 0 whole while the publisher still holds back its second half")
	}
	close(ps.release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*flowNode{f, d} {
		if !bytes.Equal(readFile(t, n.store, l), data) {
			t.Fatal("fetched bytes differ")
		}
	}
}

// A leaf served on as it arrives whose upstream goes away mid-leaf: the
// node gives it up, and its reader's stream is reset at once with the
// code a requester takes as BUSY (the node is not at fault and may have
// the leaf later), not left waiting for pieces that will not come.
func TestFlowUpstreamGone(t *testing.T) {
	data := randomBytes(2<<20+5000, 43)
	l := addFile(t, newMem(), data)
	ob, hash := outboardHash(t, data)
	ps := &pieceServer{layout: l, data: data, outboard: ob, release: make(chan struct{}), cut: true}
	pub := startPieceServer(t, ps)
	f := newFlowNode(t)
	var givenUp atomic.Int32
	f.prov.opts.Busy = func(reason string) {
		if reason == BusyGivenUp {
			givenUp.Add(1)
		}
	}
	connect(t, f.h, pub)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { _, _ = f.fetch.Fetch(ctx, l.Root, ids(pub), nil, WithOutboard(hash)) }()
	half := int(l.Leaves[0].Size) / 2 / PieceSize * PieceSize
	testutil.Eventually(t, 10*time.Second, "F to receive the first half of leaf 0", func() bool {
		lf := f.prov.flows.leaf(l.Root, 0)
		return lf != nil && lf.verified() == half
	})

	d := newHost(t)
	connect(t, d, f.h)
	s, err := d.NewStream(ctx, f.h.ID(), ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	req := &pb.FetchRequest{Cid: l.Root.Bytes(), Ranges: []*pb.LeafRange{{Start: 0, End: 1}}, SkipNodes: true}
	if err := writeRequest(s, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(s)
	var frame pb.FetchFrame
	var buf []byte
	if _, err := readHeader(br, &frame, &buf, "the header"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(blockPrefix(0, int(l.Leaves[0].Size)))+half)
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatalf("the verified half of leaf 0 from F: %v", err)
	}
	close(ps.release) // the publisher goes away mid-leaf
	_ = s.SetReadDeadline(time.Now().Add(leafPatience / 2))
	_, err = io.ReadAll(br)
	if err = leafGivenUp(err); !errors.Is(err, ErrBusy) {
		t.Fatalf("reading on after the upstream went: %v, want a reset the requester takes as BUSY", err)
	}
	if givenUp.Load() != 1 {
		t.Fatalf("%d given-up answers counted, want 1", givenUp.Load())
	}
}

// Who is to blame when pieces, outboard and CID disagree. A piece that
// does not match the publication's outboard, in a leaf that does not match
// its CID, and an outboard that does not match the publication's hash are
// the sender's errors (ErrVerify, marked bad). A false outboard that the
// publisher signed is not: a leaf that matches its CID but not the
// outboard is stored and ends serving pieces on for the fetch; a leaf
// that matches the outboard but not its CID drops the sender for the fetch
// without marking it (it may have forwarded pieces that verified).
func TestFlowBlame(t *testing.T) {
	data := randomBytes(2<<20+7, 42)
	l := addFile(t, newMem(), data)
	ob, hash := outboardHash(t, data)
	falseOb, falseHash := outboardHash(t, corruptLeaf0(data))
	for _, c := range []struct {
		name         string
		sent, ob     []byte // what the provider sends
		signed       []byte // the outboard hash the publication signs
		err          error  // nil: the fetch completes
		bad, stored0 bool
	}{
		{"bad piece", corruptLeaf0(data), ob, hash, ErrVerify, true, false},
		{"outboard not the publication's", data, falseOb, hash, ErrVerify, true, false},
		{"false signed outboard, true bytes", data, falseOb, falseHash, nil, false, true},
		{"false signed outboard and bytes", corruptLeaf0(data), falseOb, falseHash, errOutboard, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ps := &pieceServer{layout: l, data: c.sent, outboard: c.ob, release: make(chan struct{})}
			close(ps.release)
			pub := startPieceServer(t, ps)
			f := newFlowNode(t)
			connect(t, f.h, pub)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := f.fetch.Fetch(ctx, l.Root, ids(pub), nil, WithOutboard(c.signed))
			if c.err == nil && err != nil || c.err != nil && !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if f.fetch.IsBad(pub.ID()) != c.bad {
				t.Fatalf("sender marked bad: %v, want %v", !c.bad, c.bad)
			}
			if ok, _ := f.store.HasBlock(l.Leaves[0].Cid); ok != c.stored0 {
				t.Fatalf("leaf 0 stored: %v, want %v", ok, c.stored0)
			}
		})
	}
}

// The real provider sends the outboard of an expert it holds whole, and a
// fetch with the hash reads every leaf in pieces.
func TestFlowFromWholeProvider(t *testing.T) {
	data := randomBytes(2<<20+99, 44)
	src := newMem()
	l := addFile(t, src, data)
	_, hash := outboardHash(t, data)
	f := newFlowNode(t)
	prov := startProvider(t, f.h, src, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var pieces atomic.Int64
	f.prov.flows.started = func(cid.Cid, uint64) { pieces.Add(1) }
	if _, err := f.fetch.Fetch(ctx, l.Root, ids(prov), nil, WithOutboard(hash)); err != nil {
		t.Fatal(err)
	}
	if int(pieces.Load()) != len(l.Leaves) {
		t.Fatalf("%d leaves read in pieces, want %d", pieces.Load(), len(l.Leaves))
	}
	if !bytes.Equal(readFile(t, f.store, l), data) {
		t.Fatal("fetched bytes differ")
	}
}

// Leaves under way are bounded per expert (providers that start leaves and
// stall cannot make a node hold an expert's size in buffers), and dropped
// once stored or when the last fetch of the expert ends.
func TestFlowLeavesBounded(t *testing.T) {
	l := addFile(t, newMem(), randomBytes(PieceSize, 45))
	f := newFlows(nil)
	if f.fill(l.Root, 0, 10) != nil {
		t.Fatal("a leaf under way with no fetch registered")
	}
	end := f.begin(l.Root, nil)
	var second *flowLeaf
	for i := range maxFlowLeaves {
		lf := f.fill(l.Root, uint64(i), 10)
		if lf == nil {
			t.Fatalf("leaf %d refused", i)
		}
		if i == 1 {
			second = lf
		}
	}
	if f.fill(l.Root, maxFlowLeaves, 10) != nil {
		t.Fatalf("leaf %d under way, past the bound", maxFlowLeaves)
	}
	f.stored(l.Root, 0)
	if f.fill(l.Root, maxFlowLeaves, 10) == nil {
		t.Fatal("no room after a leaf was stored")
	}
	end()
	if _, err := second.next(context.Background(), 0); !errors.Is(err, errFlowDead) {
		t.Fatalf("a reader of a leaf given up: %v, want errFlowDead", err)
	}
}

// A leaf under way is given up as soon as the last request reading it ends
// without it whole (its provider cut off or lying): a reader serving it on
// learns at once, not after a leaf's patience, and the next request of
// the leaf starts it anew. One whole is kept until it is stored.
func TestFlowLeafGivenUpWithItsLastReader(t *testing.T) {
	l := addFile(t, newMem(), randomBytes(PieceSize, 46))
	f := newFlows(nil)
	end := f.begin(l.Root, nil)
	defer end()
	a := f.fill(l.Root, 3, 2*PieceSize)
	b := f.fill(l.Root, 3, 2*PieceSize) // a second request of the same leaf (stolen)
	if a == nil || a != b {
		t.Fatal("two requests of one leaf fill different leaves")
	}
	a.add(0, make([]byte, PieceSize))
	f.unfill(l.Root, 3, a)
	if got, err := a.next(context.Background(), 0); err != nil || len(got) != PieceSize {
		t.Fatalf("leaf given up while a request still reads it: %d bytes, %v", len(got), err)
	}
	f.unfill(l.Root, 3, b)
	if _, err := a.next(context.Background(), PieceSize); !errors.Is(err, errFlowDead) {
		t.Fatalf("a reader past the verified prefix of a leaf nobody reads: %v, want errFlowDead", err)
	}
	if f.leaf(l.Root, 3) != nil {
		t.Fatal("a leaf given up is still served")
	}
	c := f.fill(l.Root, 3, 2*PieceSize)
	if c == nil || c == a || c.verified() != 0 {
		t.Fatal("the next request of a leaf given up does not start it anew")
	}
	c.add(0, make([]byte, PieceSize))
	c.add(PieceSize, make([]byte, PieceSize))
	f.unfill(l.Root, 3, c)
	if f.leaf(l.Root, 3) != c {
		t.Fatal("a leaf read whole was dropped before it was stored")
	}
}
