package fetch

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/fetch/fetchtest"
	"github.com/expertd/expertd/node/store"
	"github.com/expertd/expertd/node/unixfs"
)

// memBlocks is a verifying in-memory block store.
type memBlocks = fetchtest.Mem

func newMem() *memBlocks { return fetchtest.NewMem() }

// addFile stores data as a UnixFS file in b and returns its layout.
func addFile(t testing.TB, b Blocks, data []byte) *unixfs.Layout {
	return fetchtest.AddFile(t, b, data)
}

// readFile reassembles the file l from b.
func readFile(t testing.TB, b Blocks, l *unixfs.Layout) []byte {
	t.Helper()
	out, err := fetchtest.ReadFile(b, l)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var randomBytes = testutil.RandomBytes

func newHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connect(t testing.TB, a, b host.Host) {
	t.Helper()
	if err := a.Connect(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// startProvider serves b from a new host connected to req.
func startProvider(t testing.TB, req host.Host, b Blocks, served *atomic.Int64) host.Host {
	t.Helper()
	h := newHost(t)
	opts := ProviderOptions{}
	if served != nil {
		opts.Served = func(_ peer.ID, n int) { served.Add(int64(n)) }
	}
	p := NewProvider(h, b, opts)
	ctx, cancel := context.WithCancel(context.Background())
	go p.Serve(ctx)
	t.Cleanup(cancel)
	connect(t, req, h)
	waitHandler(t, h)
	return h
}

func waitHandler(t testing.TB, h host.Host) {
	for range 100 {
		for _, p := range h.Mux().Protocols() {
			if p == ProtocolID {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("fetch handler not registered")
}

func ids(hs ...host.Host) []peer.ID {
	var out []peer.ID
	for _, h := range hs {
		out = append(out, h.ID())
	}
	return out
}

func TestFetchOneProvider(t *testing.T) {
	data := randomBytes(3<<20+12345, 1)
	src := newMem()
	l := addFile(t, src, data)
	reqHost := newHost(t)
	prov := startProvider(t, reqHost, src, nil)
	dst := newMem()
	f := NewFetcher(reqHost, dst, Options{})
	var last Progress
	got, err := f.Fetch(context.Background(), l.Root, ids(prov), func(p Progress) { last = p })
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst, got), data) {
		t.Fatal("fetched bytes differ")
	}
	if last.Bytes != uint64(len(data)) || last.Leaves != 4 {
		t.Fatalf("last progress %+v", last)
	}
}

func TestFetchSmallRawExpert(t *testing.T) {
	data := randomBytes(1000, 2)
	src := newMem()
	l := addFile(t, src, data)
	reqHost := newHost(t)
	prov := startProvider(t, reqHost, src, nil)
	dst := newMem()
	got, err := NewFetcher(reqHost, dst, Options{}).Fetch(context.Background(), l.Root, ids(prov), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst, got), data) {
		t.Fatal("fetched bytes differ")
	}
}

// Three equal providers split the expert: each sends some and every leaf
// moves once. On the virtual clock (simProviders): under real time a
// loaded machine can stall one provider long enough that taking its tail
// is right, and the tail then moves twice.
func TestFetchThreeProvidersEachLeafOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data := randomBytes(9<<20+7, 3)
		src := newMem()
		l := addFile(t, src, data)
		var served [3]atomic.Int64
		reqHost, provs := simProviders(t, []Blocks{src, src, src}, []*atomic.Int64{&served[0], &served[1], &served[2]})
		dst := newMem()
		got, err := NewFetcher(reqHost, dst, Options{}).Fetch(context.Background(), l.Root, ids(provs...), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readFile(t, dst, got), data) {
			t.Fatal("fetched bytes differ")
		}
		var total int64
		for i := range served {
			if served[i].Load() == 0 {
				t.Errorf("provider %d served nothing", i)
			}
			total += served[i].Load()
		}
		if total != int64(len(data)) {
			t.Errorf("providers sent %d bytes for a %d-byte expert", total, len(data))
		}
		for _, leaf := range got.Leaves {
			if n := dst.Puts()[leaf.Cid]; n != 1 {
				t.Errorf("leaf %s stored %d times", leaf.Cid, n)
			}
		}
	})
}

// failingBlocks serves from b but fails or corrupts chosen leaves.
type failingBlocks struct {
	*memBlocks
	mu      sync.Mutex
	gets    int
	failAt  int // GetBlock calls (counting leaves only) after which it fails; -1 never
	corrupt map[cid.Cid]bool
	onFail  func()
	leaves  map[cid.Cid]bool
	nodes   int // reads of other blocks: a request reads its expert's root first
}

func (f *failingBlocks) GetBlock(c cid.Cid) ([]byte, error) {
	d, err := f.memBlocks.GetBlock(c)
	if err != nil || !f.leaves[c] {
		f.mu.Lock()
		f.nodes++
		f.mu.Unlock()
		return d, err
	}
	f.mu.Lock()
	f.gets++
	n := f.gets
	f.mu.Unlock()
	if f.failAt >= 0 && n > f.failAt {
		if f.onFail != nil {
			f.onFail()
			time.Sleep(time.Second) // the host is closing; do not serve on
		}
		return nil, errors.New("disk on fire")
	}
	if f.corrupt[c] {
		bad := append([]byte(nil), d...)
		bad[len(bad)/2] ^= 0x40
		return bad, nil
	}
	return d, nil
}

func wrap(src *memBlocks, l *unixfs.Layout) *failingBlocks {
	leaves := map[cid.Cid]bool{}
	for _, leaf := range l.Leaves {
		leaves[leaf.Cid] = true
	}
	return &failingBlocks{memBlocks: src, failAt: -1, corrupt: map[cid.Cid]bool{}, leaves: leaves}
}

func TestFetchResumesWithoutRefetching(t *testing.T) {
	data := randomBytes(6<<20, 4)
	src := newMem()
	l := addFile(t, src, data)
	reqHost := newHost(t)
	broken := wrap(src, l)
	broken.failAt = 2 // serves two leaves, then fails
	p1 := startProvider(t, reqHost, broken, nil)
	dst := newMem()
	f := NewFetcher(reqHost, dst, Options{})
	if _, err := f.Fetch(context.Background(), l.Root, ids(p1), nil); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("interrupted fetch: got %v, want ErrIncomplete", err)
	}
	var kept int
	for _, leaf := range l.Leaves {
		if ok, _ := dst.HasBlock(leaf.Cid); ok {
			kept++
		}
	}
	if kept != 2 {
		t.Fatalf("%d leaves kept after the interruption, want 2", kept)
	}
	var served atomic.Int64
	p2 := startProvider(t, reqHost, src, &served)
	got, err := f.Fetch(context.Background(), l.Root, ids(p2), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst, got), data) {
		t.Fatal("fetched bytes differ")
	}
	if want := int64(len(data) - 2<<20); served.Load() != want {
		t.Fatalf("resumed fetch moved %d bytes, want %d (only the missing leaves)", served.Load(), want)
	}
}

func TestFetchRejectsCorruptBlock(t *testing.T) {
	data := randomBytes(5<<20, 5)
	src := newMem()
	l := addFile(t, src, data)
	reqHost := newHost(t)
	bad := wrap(src, l)
	for _, leaf := range l.Leaves { // whichever share it gets is corrupt
		bad.corrupt[leaf.Cid] = true
	}
	pBad := startProvider(t, reqHost, bad, nil)
	pGood := startProvider(t, reqHost, src, nil)
	dst := newMem()
	f := NewFetcher(reqHost, dst, Options{})
	got, err := f.Fetch(context.Background(), l.Root, []peer.ID{pBad.ID(), pGood.ID()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst, got), data) {
		t.Fatal("fetched bytes differ")
	}
	if !f.IsBad(pBad.ID()) {
		t.Fatal("the provider of a corrupt block is not marked")
	}
	if f.IsBad(pGood.ID()) {
		t.Fatal("the good provider is marked")
	}
}

func TestFetchProviderDiesMidStream(t *testing.T) {
	data := randomBytes(8<<20, 6)
	src := newMem()
	l := addFile(t, src, data)
	reqHost := newHost(t)
	dying := wrap(src, l)
	dying.failAt = 1
	pDie := startProvider(t, reqHost, dying, nil)
	dying.onFail = func() { go pDie.Close() }
	pGood := startProvider(t, reqHost, src, nil)
	dst := newMem()
	var failed []peer.ID
	opts := Options{Failed: func(root cid.Cid, p peer.ID, _ error) {
		if root == l.Root {
			failed = append(failed, p)
		}
	}}
	got, err := NewFetcher(reqHost, dst, opts).Fetch(context.Background(), l.Root, []peer.ID{pDie.ID(), pGood.ID()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || failed[0] != pDie.ID() {
		t.Fatalf("Failed reported %v, want the dying provider only", failed)
	}
	if !bytes.Equal(readFile(t, dst, got), data) {
		t.Fatal("fetched bytes differ")
	}
}

func TestFetchNoProviders(t *testing.T) {
	reqHost := newHost(t)
	c, _ := cid.Decode("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	if _, err := NewFetcher(reqHost, newMem(), Options{}).Fetch(context.Background(), c, nil, nil); !errors.Is(err, ErrNoProviders) {
		t.Fatalf("got %v", err)
	}
}

func TestFetchNotFound(t *testing.T) {
	reqHost := newHost(t)
	prov := startProvider(t, reqHost, newMem(), nil)
	l, _ := unixfs.Build(bytes.NewReader(randomBytes(100, 7)))
	_, err := NewFetcher(reqHost, newMem(), Options{}).Fetch(context.Background(), l.Root, ids(prov), nil)
	if !errors.Is(err, ErrIncomplete) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrIncomplete wrapping ErrNotFound", err)
	}
}

// slowBlocks delays every leaf read.
type slowBlocks struct {
	*memBlocks
	delay  time.Duration
	leaves map[cid.Cid]bool
}

func (s *slowBlocks) GetBlock(c cid.Cid) ([]byte, error) {
	if s.leaves[c] {
		time.Sleep(s.delay)
	}
	return s.memBlocks.GetBlock(c)
}

// TestFetchReassignsFromSlowProvider: a provider ten times slower than
// another loses the tail of its share to it.
func TestFetchReassignsFromSlowProvider(t *testing.T) {
	data := randomBytes(12<<20, 8)
	src := newMem()
	l := addFile(t, src, data)
	reqHost := newHost(t)
	slow := &slowBlocks{memBlocks: src, delay: 300 * time.Millisecond, leaves: wrap(src, l).leaves}
	var slowServed, fastServed atomic.Int64
	pSlow := startProvider(t, reqHost, slow, &slowServed)
	pFast := startProvider(t, reqHost, &slowBlocks{memBlocks: src, delay: 10 * time.Millisecond, leaves: slow.leaves}, &fastServed)
	dst := newMem()
	got, err := NewFetcher(reqHost, dst, Options{}).Fetch(context.Background(), l.Root, []peer.ID{pSlow.ID(), pFast.ID()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst, got), data) {
		t.Fatal("fetched bytes differ")
	}
	if fastServed.Load() <= int64(len(data))/2+1<<20 {
		t.Fatalf("fast provider served %d of %d bytes: nothing was re-assigned from the slow one", fastServed.Load(), len(data))
	}
}

// slowFailBlocks fails every request, but only after a delay: its share
// comes back after the other provider's header has told the layout.
type slowFailBlocks struct{ *memBlocks }

func (s slowFailBlocks) GetBlock(c cid.Cid) ([]byte, error) {
	time.Sleep(300 * time.Millisecond)
	return nil, store.ErrNotFound
}

// TestFetchShareOfLateFailure: a provider that fails before its header,
// after another provider's header arrived, hands its share to the others.
func TestFetchShareOfLateFailure(t *testing.T) {
	for _, size := range []int{1000, 3<<20 + 5} {
		data := randomBytes(size, 11)
		src := newMem()
		l := addFile(t, src, data)
		reqHost := newHost(t)
		pFail := startProvider(t, reqHost, slowFailBlocks{src}, nil)
		pGood := startProvider(t, reqHost, src, nil)
		dst := newMem()
		// The failing provider is listed first, so it gets share 0.
		got, err := NewFetcher(reqHost, dst, Options{}).Fetch(context.Background(), l.Root, []peer.ID{pFail.ID(), pGood.ID()}, nil)
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if !bytes.Equal(readFile(t, dst, got), data) {
			t.Fatal("fetched bytes differ")
		}
	}
}

// TestProviderPeerRate: a per-peer serving cap slows one peer's fetch to
// about the configured rate.
func TestProviderPeerRate(t *testing.T) {
	data := randomBytes(3<<20, 12)
	src := newMem()
	l := addFile(t, src, data)
	reqHost := newHost(t)
	h := newHost(t)
	p := NewProvider(h, src, ProviderOptions{PeerRate: 2 << 20}) // 2 MiB/s
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Serve(ctx)
	connect(t, reqHost, h)
	waitHandler(t, h)
	start := time.Now()
	if _, err := NewFetcher(reqHost, newMem(), Options{}).Fetch(context.Background(), l.Root, ids(h), nil); err != nil {
		t.Fatal(err)
	}
	// The first leaf goes in the initial burst; the other two take >= 1 s.
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Fatalf("3 MiB at a 2 MiB/s cap took %v", took)
	}
}

// A provider that sent a corrupt block is not asked again, by any fetch of
// the same Fetcher, for BadPeerTTL; after that it is.
func TestFetchAvoidsBadPeerForTTL(t *testing.T) {
	src := newMem()
	data := randomBytes(3<<20, 46)
	l := addFile(t, src, data)
	l2 := addFile(t, src, randomBytes(2<<20, 47)) // for after the TTL
	reqHost := newHost(t)
	bad := wrap(src, l)
	for _, leaf := range append(l.Leaves, l2.Leaves...) {
		bad.leaves[leaf.Cid] = true
		bad.corrupt[leaf.Cid] = true
	}
	// Requests the bad provider served: each reads the expert's root
	// before its header, so the count is final once a fetch returns
	// (its leaf reads are not: a reset stream may see one more).
	asked := func() int {
		bad.mu.Lock()
		defer bad.mu.Unlock()
		return bad.nodes
	}
	pBad := startProvider(t, reqHost, bad, nil)
	pGood := startProvider(t, reqHost, src, nil)
	dst := newMem()
	f := NewFetcher(reqHost, dst, Options{})
	ctx := context.Background()
	if _, err := f.Fetch(ctx, l.Root, ids(pBad), nil); !errors.Is(err, ErrVerify) {
		t.Fatalf("fetch from a corrupt provider: %v, want ErrVerify", err)
	}
	if !f.IsBad(pBad.ID()) {
		t.Fatal("the provider of a corrupt block is not marked")
	}
	// Within the TTL: alone it is no provider at all; beside a good one it
	// is not asked.
	n := asked()
	if _, err := f.Fetch(ctx, l.Root, ids(pBad), nil); !errors.Is(err, ErrNoProviders) || errors.Is(err, ErrIncomplete) {
		t.Fatalf("fetch from a marked provider alone: %v, want ErrNoProviders before any request", err)
	}
	got, err := f.Fetch(ctx, l.Root, ids(pBad, pGood), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst, got), data) {
		t.Fatal("fetched bytes differ")
	}
	if asked() != n {
		t.Fatalf("the marked provider was asked again within the TTL (%d requests, had %d)", asked(), n)
	}
	// Past the TTL it is asked again (and fails again).
	past := time.Now().Add(f.opts.BadPeerTTL + time.Second)
	f.now = func() time.Time { return past }
	if _, err := f.Fetch(ctx, l2.Root, ids(pBad), nil); !errors.Is(err, ErrVerify) {
		t.Fatalf("fetch from the provider past its TTL: %v, want it asked (ErrVerify)", err)
	}
	if asked() == n {
		t.Fatal("the provider was not asked past its TTL")
	}
}
