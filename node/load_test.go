package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"go.uber.org/goleak"

	"github.com/expertd/expertd/compress/synth"
	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/fetch"
	"github.com/expertd/expertd/node/unixfs"
)

// TestConcurrentFetchLoad runs 100 fetches at once against one node (ten
// requester hosts, ten fetches each, every fetch with its own Fetcher and
// store, as ten peers would) of one multi-leaf expert. Every fetch gets the
// same bytes; the process's heap stays within a bound; goroutines and file
// descriptors return to what they were before the load.
//
// fetch.streams_per_peer is raised to 10 so each requester's ten fetches
// are all admitted per peer and the provider's own cap on concurrent fetch
// streams (fetch.max_streams, 8 upload slots) is what is exercised, as
// with 100 distinct peers: the fetches past it get BUSY, and retry after a
// short random pause, as a caller of the fetch protocol has to.
//
// Memory: provider and requesters share this process, so what is measured
// (HeapInuse, sampled every 10 ms, above its level before the load) covers
// both. A heap profile at the peak shows what a stream holds: on the
// provider, the leaf read from the store and the frame it is marshalled
// into (2 frames); on the requester, the stream's 256 KiB read buffer, the
// frame read and the leaf unmarshalled from it (2 frames and a quarter);
// a fetch waiting after a BUSY answer holds a read buffer at most. At most
// MaxStreams streams are served at once, and with GOGC=100 the heap in use
// reaches twice what is live, so the bound is
// 64 MiB + 2 × (8 × 4.25 frames + 100 × 256 KiB) ≈ 182 MiB, of which the
// provider's share, 2 × 8 × 2 frames, grows neither with the number of
// fetches nor with the expert's size.
func TestConcurrentFetchLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("100 concurrent fetches")
	}
	const (
		requesters = 10
		perHost    = 10
		fetches    = requesters * perHost
		maxStreams = 8 // fetch.max_streams's default
		frame      = unixfs.ChunkSize + 1024
		readBuf    = 256 << 10 // the fetcher's bufio.Reader per stream
		bound      = 64<<20 + 2*(maxStreams*(4*frame+readBuf)+fetches*readBuf)
	)
	testStart := time.Now()
	adapter := filepath.Join(t.TempDir(), "adapter")
	if err := synth.WriteLoRA(adapter, 8<<20, 1); err != nil {
		t.Fatal(err)
	}
	prov := startNode(t, nil, map[string]any{
		"fetch.streams_per_peer": perHost, "gossip.reannounce": "1h", "gossip.ttl": "2h",
	})
	pub, err := prov.Publish(context.Background(), api.PublishRequest{Path: adapter, Name: "load", Density: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	root, err := cid.Decode(pub.CID)
	if err != nil {
		t.Fatal(err)
	}
	want := readExpert(t, prov, root)
	if len(want) <= unixfs.ChunkSize {
		t.Fatalf("the expert is %d bytes, one leaf: the load needs several", len(want))
	}
	t.Logf("expert: %d bytes in %d leaves (compressed in %v)", len(want), (len(want)+unixfs.ChunkSize-1)/unixfs.ChunkSize, time.Since(testStart).Round(time.Millisecond))

	// The baseline: the provider running idle, the publication's
	// background announcement done.
	settle(t)
	leakBase := goleak.IgnoreCurrent()
	g0, fd0 := runtime.NumGoroutine(), countFDs(t)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapInuse

	sampler := startSampler(prov)
	t.Cleanup(func() { sampler.stop() })

	hosts := make([]host.Host, requesters)
	closers := make([]func(), requesters)
	for i := range hosts {
		h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.Transport(tcp.NewTCPTransport), libp2p.DisableRelay())
		if err != nil {
			t.Fatal(err)
		}
		hosts[i] = h
		closers[i] = sync.OnceFunc(func() { h.Close() })
		t.Cleanup(closers[i])
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = h.Connect(ctx, peer.AddrInfo{ID: prov.p2p.ID(), Addrs: prov.p2p.Addrs()})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var (
		wg          sync.WaitGroup
		busy        atomic.Int64
		inFlight    atomic.Int64
		maxInFlight atomic.Int64
		errs        = make([]error, fetches)
		stores      = make([]*digestBlocks, fetches)
		layouts     = make([]*unixfs.Layout, fetches)
		took        = make([]time.Duration, fetches)
		gate        = make(chan struct{})
	)
	for i := range fetches {
		h := hosts[i%requesters]
		wg.Go(func() {
			<-gate
			start := time.Now()
			for {
				b := newDigestBlocks()
				f := fetch.NewFetcher(h, b, fetch.Options{Logger: quiet})
				raise(&maxInFlight, inFlight.Add(1))
				l, err := f.Fetch(ctx, root, []peer.ID{prov.p2p.ID()}, nil)
				inFlight.Add(-1)
				if errors.Is(err, fetch.ErrBusy) && ctx.Err() == nil {
					busy.Add(1)
					time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
					continue
				}
				stores[i], layouts[i], errs[i], took[i] = b, l, err, time.Since(start)
				return
			}
		})
	}
	loadStart := time.Now()
	close(gate)
	wg.Wait()
	loadTime := time.Since(loadStart)
	peak := sampler.stop()

	var slowest time.Duration
	for i := range fetches {
		if errs[i] != nil {
			t.Fatalf("fetch %d: %v", i, errs[i])
		}
		if err := stores[i].same(layouts[i], want); err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		slowest = max(slowest, took[i])
	}
	growth := int64(peak.heapInuse) - int64(heap0)
	t.Logf("%d fetches of %d bytes in %v (slowest %v); %d BUSY answers retried; at most %d fetches in flight, %d fetch streams open on the provider at once (served, refused or closing)",
		fetches, len(want), loadTime.Round(time.Millisecond), slowest.Round(time.Millisecond), busy.Load(), maxInFlight.Load(), peak.streams)
	t.Logf("memory: heap in use %s before, peak %s (+%s; bound +%s); heap from the OS peak %s; RSS peak %s",
		mib(heap0), mib(peak.heapInuse), mib(uint64(max(growth, 0))), mib(bound), mib(peak.heapSys), mib(peak.rss))
	if growth > bound {
		t.Errorf("heap grew by %s under load, above the bound of %s", mib(uint64(growth)), mib(bound))
	}

	// Afterwards: the requesters leave, and the provider is back where it
	// started.
	for _, closeHost := range closers {
		closeHost()
	}
	testutil.Eventually(t, 10*time.Second, "the provider drops the requesters' connections", func() bool {
		return len(prov.p2p.Network().Peers()) == 0
	})
	var leak error
	if !within(15*time.Second, func() bool { leak = goleak.Find(leakBase); return leak == nil }) {
		t.Errorf("goroutines not back to the baseline within 15s: %v", leak)
	}
	var fd1 int
	if !within(10*time.Second, func() bool { fd1 = countFDs(t); return fd1 <= fd0 }) {
		t.Errorf("file descriptors not back to the baseline within 10s: %d, was %d", fd1, fd0)
	}
	t.Logf("goroutines: %d before, peak %d, %d after; file descriptors: %d before, peak %d, %d after; test took %v",
		g0, peak.goroutines, runtime.NumGoroutine(), fd0, peak.fds, fd1, time.Since(testStart).Round(time.Millisecond))
}

// readExpert reads an expert's container from n's store.
func readExpert(t *testing.T, n *Node, c cid.Cid) []byte {
	t.Helper()
	rc, err := n.store.Open(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// digestBlocks is a fetch.Blocks that verifies every block against its CID
// and keeps internal nodes whole but only the SHA-256 of leaves, so a
// hundred fetches do not hold a hundred copies of the expert.
type digestBlocks struct {
	mu     sync.Mutex
	nodes  map[cid.Cid][]byte
	leaves map[cid.Cid][32]byte
}

var _ fetch.Blocks = (*digestBlocks)(nil)

func newDigestBlocks() *digestBlocks {
	return &digestBlocks{nodes: map[cid.Cid][]byte{}, leaves: map[cid.Cid][32]byte{}}
}

func (b *digestBlocks) PutBlock(c cid.Cid, data []byte) error {
	if err := unixfs.VerifyBlock(c, data); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.Prefix().Codec == cid.Raw {
		b.leaves[c] = sha256.Sum256(data)
	} else {
		b.nodes[c] = bytes.Clone(data)
	}
	return nil
}

// GetBlock returns internal nodes only: the fetcher reads nothing else.
func (b *digestBlocks) GetBlock(c cid.Cid) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d, ok := b.nodes[c]; ok {
		return bytes.Clone(d), nil
	}
	return nil, fmt.Errorf("block %s: not held whole", c)
}

func (b *digestBlocks) HasBlock(c cid.Cid) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, leaf := b.leaves[c]
	_, node := b.nodes[c]
	return leaf || node, nil
}

// same checks that the leaves received, in l's order, are want.
func (b *digestBlocks) same(l *unixfs.Layout, want []byte) error {
	if l.Size != uint64(len(want)) {
		return fmt.Errorf("layout of %d bytes, want %d", l.Size, len(want))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, leaf := range l.Leaves {
		got, ok := b.leaves[leaf.Cid]
		if !ok {
			return fmt.Errorf("leaf %d not received", i)
		}
		if got != sha256.Sum256(want[leaf.Offset:leaf.Offset+leaf.Size]) {
			return fmt.Errorf("leaf %d differs from the provider's bytes", i)
		}
	}
	return nil
}

// within polls cond until it holds or d has passed, and says which.
func within(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// settle waits until the goroutine count has not changed for half a second.
func settle(t *testing.T) {
	t.Helper()
	last, since := runtime.NumGoroutine(), time.Now()
	testutil.Eventually(t, 15*time.Second, "the goroutine count settles", func() bool {
		if n := runtime.NumGoroutine(); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= 500*time.Millisecond
	})
}

type peaks struct {
	heapInuse, heapSys, rss uint64
	goroutines, fds         int
	streams                 int // fetch streams open on the provider
}

type sampler struct {
	stopc chan struct{}
	done  chan peaks
	once  sync.Once
	peaks peaks
}

// startSampler records the process's peaks every 10 ms until stop.
func startSampler(prov *Node) *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan peaks, 1)}
	go func() {
		var p peaks
		var ms runtime.MemStats
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			p.heapInuse = max(p.heapInuse, ms.HeapInuse)
			p.heapSys = max(p.heapSys, ms.HeapSys)
			p.rss = max(p.rss, rss())
			p.goroutines = max(p.goroutines, runtime.NumGoroutine())
			if entries, err := os.ReadDir("/proc/self/fd"); err == nil {
				p.fds = max(p.fds, len(entries))
			}
			streams := 0
			for _, c := range prov.p2p.Network().Conns() {
				for _, st := range c.GetStreams() {
					if st.Protocol() == fetch.ProtocolID {
						streams++
					}
				}
			}
			p.streams = max(p.streams, streams)
			select {
			case <-s.stopc:
				s.done <- p
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// stop stops sampling (once) and returns the peaks.
func (s *sampler) stop() peaks {
	s.once.Do(func() {
		close(s.stopc)
		s.peaks = <-s.done
	})
	return s.peaks
}

// raise sets m to n if n is larger.
func raise(m *atomic.Int64, n int64) {
	for old := m.Load(); n > old && !m.CompareAndSwap(old, n); old = m.Load() {
	}
}

// rss is the process's resident set size from /proc/self/status (0 if
// unknown).
func rss() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// countFDs counts this process's open file descriptors.
func countFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(entries)
}

func mib[T int | int64 | uint64](b T) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
