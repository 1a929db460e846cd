package gossip

import (
	"container/heap"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// checkView checks the view's invariants: every pair is recorded in its
// entry, its provider and its source, once; a source's evictable pairs are
// those not parked; counts and accounted bytes equal what they count; the
// heap is a heap.
func checkView(t *testing.T, v *View) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	pairs := map[*share]int{}
	mem := int64(0)
	n := 0
	for c, e := range v.entries {
		if len(e.providers) == 0 {
			t.Fatalf("entry %s without providers", c)
		}
		if e.cost != entryCost(&e.ann) {
			t.Fatalf("entry %s accounted %d bytes, costs %d", c, e.cost, entryCost(&e.ann))
		}
		mem += e.cost
		for id, p := range e.providers {
			if p.prov.id != id || p.cid != c || v.provs[id] != p.prov || v.srcs[p.src.id] != p.src {
				t.Fatalf("pair (%s, %s) misfiled", c, id)
			}
			pairs[p.prov]++
			pairs[p.src]++
			n++
		}
	}
	for _, m := range []map[peer.ID]*share{v.provs, v.srcs} {
		for id, s := range m {
			if s.pairs != pairs[s] || s.pairs == 0 {
				t.Fatalf("share of %s: %d pairs recorded, %d held", id, s.pairs, pairs[s])
			}
			mem += shareOverhead + int64(len(id))
		}
	}
	for id, pv := range v.provs {
		if pv.pairs > v.maxProv {
			t.Fatalf("provider %s holds %d pairs, bound %d", id, pv.pairs, v.maxProv)
		}
	}
	for id, src := range v.srcs {
		for el := src.lru.Front(); el != nil; el = el.Next() {
			p := el.Value.(*pair)
			if p.elem != el || p.src != src {
				t.Fatalf("source %s lists a pair not its own", id)
			}
		}
		if v.heavy[src.index] != src {
			t.Fatalf("source %s not at its heap index", id)
		}
	}
	mem += int64(n) * pairOverhead
	if len(v.heavy) != len(v.srcs) || n != v.pairs || mem != v.mem {
		t.Fatalf("heap %d sources of %d, %d pairs counted %d, %d bytes accounted %d", len(v.heavy), len(v.srcs), n, v.pairs, mem, v.mem)
	}
	for i := 1; i < len(v.heavy); i++ {
		if v.heavy.Less(i, (i-1)/2) {
			t.Fatalf("heap order broken at %d", i)
		}
	}
	if len(v.entries) > v.max || v.mem > v.maxMem {
		t.Fatalf("view past its bounds: %d experts, %d bytes", len(v.entries), v.mem)
	}
}

// TestViewEvictsHeaviestProvider: a full view makes room for a new expert
// by evicting the least recently seen expert of the provider holding the
// most, so a flooder evicts its own; an expert another provider holds
// loses the flooder's pair but stays.
func TestViewEvictsHeaviestProvider(t *testing.T) {
	v, clk := newTestView(time.Hour, 10)
	flooder, honest, other := testPeer(t), testPeer(t), testPeer(t)
	for i := range 3 {
		v.Add(clk.ann(100+i, honest))
		clk.add(time.Second)
	}
	v.Add(clk.ann(0, flooder))
	v.Add(clk.ann(0, other)) // a popular expert
	for i := 1; i < 50; i++ {
		clk.add(time.Second)
		if !v.Add(clk.ann(i, flooder)) {
			t.Fatalf("flooder's expert %d refused", i)
		}
		checkView(t, v)
	}
	for i := range 3 {
		if !slices.Contains(v.Providers(testCID(100+i)), honest) {
			t.Fatalf("honest expert %d evicted", i)
		}
	}
	if got := v.Providers(testCID(0)); !slices.Equal(got, []peer.ID{other}) {
		t.Fatalf("popular expert's providers %v, want the other one only", got)
	}
	// The flooder kept its 6 latest.
	for i := 1; i < 50; i++ {
		if _, ok := v.Get(testCID(i)); ok != (i >= 44) {
			t.Fatalf("flooder's expert %d held: %v", i, ok)
		}
	}
	// A new honest expert evicts the flooder's oldest, not honest ones.
	clk.add(time.Second)
	if !v.Add(clk.ann(200, honest)) {
		t.Fatal("new honest expert refused")
	}
	if _, ok := v.Get(testCID(44)); ok {
		t.Fatal("the flooder's oldest survived")
	}
	// Seen again, the flooder's oldest becomes its newest.
	clk.add(time.Second)
	v.Add(clk.ann(45, flooder))
	v.Add(clk.ann(300, flooder))
	if _, ok := v.Get(testCID(45)); !ok {
		t.Fatal("refreshed expert evicted")
	}
	if _, ok := v.Get(testCID(46)); ok {
		t.Fatal("least recently seen expert kept")
	}
	if c := v.Counts(); c.Evicted != 49-6+2+1 || c.Refused != 0 || c.Experts != 10 {
		t.Fatalf("counts %+v", c)
	}
	checkView(t, v)
}

// TestViewEvictsBySource: identities made up by the thousand and sent
// over one connection are that connection's share: a full view evicts
// them before the experts of a peer announcing a few, and a pair its
// provider announces itself leaves the forwarder's share for its own.
func TestViewEvictsBySource(t *testing.T) {
	v, clk := newTestView(time.Hour, 10)
	relay, honest := testPeer(t), testPeer(t)
	for i := range 3 {
		v.add(checked{Announcement: clk.ann(100+i, honest)}, honest)
	}
	forwarded := clk.ann(200, honest) // reached this node through the relay first
	v.add(checked{Announcement: forwarded}, relay)
	sybils := testPeers(t, 50)
	for i, id := range sybils {
		clk.add(time.Second)
		if !v.add(checked{Announcement: clk.ann(i, id)}, relay) {
			t.Fatalf("sybil %d refused", i)
		}
		if i == 2 { // now the honest provider announces it itself
			v.add(checked{Announcement: clk.ann(200, honest)}, honest)
		}
		checkView(t, v)
	}
	for _, i := range []int{100, 101, 102, 200} {
		if !slices.Contains(v.Providers(testCID(i)), honest) {
			t.Fatalf("honest expert %d evicted", i)
		}
	}
	if c := v.Counts(); c.Experts != 10 || c.Sources != 2 || c.Providers != 7 {
		t.Fatalf("counts %+v", c)
	}
}

// TestViewMaxPerProvider: a provider holding MaxPerProvider experts has
// its announcements of more ignored, but its known ones refreshed; others
// are not affected.
func TestViewMaxPerProvider(t *testing.T) {
	v, clk := newBoundedView(ViewOptions{TTL: time.Hour, MaxPerProvider: 3})
	p, q := testPeer(t), testPeer(t)
	for i := range 3 {
		v.Add(clk.ann(i, p))
	}
	if v.Add(clk.ann(3, p)) || v.Len() != 3 {
		t.Fatal("a fourth expert of a provider bounded at 3 taken")
	}
	if known, ok := v.admits(testCID(3), p); known || ok {
		t.Fatal("admits a fourth")
	}
	if known, ok := v.admits(testCID(0), p); !known || !ok {
		t.Fatal("does not admit a known one")
	}
	clk.add(time.Minute)
	v.Add(clk.ann(0, p))
	if e, _ := v.Get(testCID(0)); !e.Providers[0].LastSeen.Equal(clk.t) {
		t.Fatal("refresh of a known expert ignored")
	}
	v.Add(clk.ann(3, q))
	v.Add(clk.ann(4, q))
	if v.Len() != 5 {
		t.Fatalf("another provider's experts: Len %d", v.Len())
	}
	// Another provider of a known expert is a new pair: p has no room.
	if v.Add(clk.ann(3, p)); slices.Contains(v.Providers(testCID(3)), p) {
		t.Fatal("a fourth pair recorded")
	}
	v.DropProvider(testCID(1), p)
	v.Add(clk.ann(3, p))
	if !slices.Contains(v.Providers(testCID(3)), p) {
		t.Fatal("no room after a pair was dropped")
	}
	if c := v.Counts(); c.Capped != 2 {
		t.Fatalf("counts %+v", c)
	}
	checkView(t, v)
}

// TestViewKeep: experts Keep keeps are never evicted; with nothing else
// left, a new expert is refused (and counted); once Keep lets them go and
// Expire has run, they are evicted again.
func TestViewKeep(t *testing.T) {
	kept := map[cid.Cid]bool{}
	v, clk := newBoundedView(ViewOptions{TTL: time.Hour, MaxExperts: 4, Keep: func(e Entry) bool {
		if e.Providers != nil {
			panic("Keep got providers")
		}
		return kept[e.CID]
	}})
	p := testPeer(t)
	for i := range 4 {
		kept[testCID(i)] = i < 3
		v.Add(clk.ann(i, p))
		clk.add(time.Second)
	}
	for i := 4; i < 10; i++ {
		if !v.Add(clk.ann(i, p)) {
			t.Fatalf("expert %d refused", i)
		}
		clk.add(time.Second)
	}
	for i := range 3 {
		if _, ok := v.Get(testCID(i)); !ok {
			t.Fatalf("kept expert %d evicted", i)
		}
	}
	kept[testCID(9)] = true
	if v.Add(clk.ann(10, testPeer(t))) {
		t.Fatal("a new expert taken into a view full of kept ones")
	}
	kept[testCID(11)] = true
	if v.Add(clk.ann(11, testPeer(t))) {
		t.Fatal("a new kept expert taken into a view full of kept ones")
	}
	checkView(t, v)
	if c := v.Counts(); c.Refused != 1 || c.Evicted != 7 || c.Experts != 4 {
		t.Fatalf("counts %+v", c)
	}
	clear(kept)
	if v.Add(clk.ann(20, p)) {
		t.Fatal("parked experts evicted before Expire")
	}
	v.Expire()
	if !v.Add(clk.ann(21, p)) {
		t.Fatal("refused after Keep let go and Expire")
	}
	if _, ok := v.Get(testCID(0)); ok {
		t.Fatal("the oldest let-go expert kept")
	}
	checkView(t, v)
}

// TestViewMaxBytes: large entries are evicted to keep the accounted
// memory under MaxBytes, and new ones still come in.
func TestViewMaxBytes(t *testing.T) {
	v, clk := newBoundedView(ViewOptions{TTL: time.Hour, MaxBytes: 64 << 10})
	flooder, honest := testPeer(t), testPeer(t)
	small := clk.ann(1000, honest)
	v.Add(small)
	for i := range 100 {
		a := bigAnn(clk.ann(i, flooder))
		v.Add(a)
		clk.add(time.Millisecond)
		checkView(t, v)
	}
	if _, ok := v.Get(small.CID); !ok {
		t.Fatal("small honest expert evicted")
	}
	c := v.Counts()
	if c.Bytes > 64<<10 || c.Experts < 3 || c.Evicted == 0 {
		t.Fatalf("counts %+v", c)
	}
	if !v.Add(clk.ann(1001, honest)) {
		t.Fatal("a new honest expert refused")
	}
}

// bigAnn returns a with metadata about as large as an announcement may
// carry.
func bigAnn(a Announcement) Announcement {
	a.Name = strings.Repeat("n", maxNameLen)
	a.BaseModel = strings.Repeat("b", maxBaseModelLen)
	a.TargetModules = nil
	for i := range 100 {
		a.TargetModules = append(a.TargetModules, fmt.Sprintf("%0120d", i))
	}
	return a
}

// TestViewMemoryAccounted: the bytes a view accounts for are within a
// quarter of what its entries take on the heap (strings allocated one by
// one, as decoding does), for small and large entries.
func TestViewMemoryAccounted(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates some 100 MB")
	}
	for _, tc := range []struct {
		name string
		mk   func(Announcement) Announcement
		n    int
	}{
		{"small", func(a Announcement) Announcement { return a }, 20_000},
		{"large", bigAnn, 4_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, clk := newBoundedView(ViewOptions{TTL: time.Hour, MaxBytes: 1 << 40, MaxPerProvider: 1 << 20})
			peers := testPeers(t, 10)
			before := heapInUse()
			for i := range tc.n {
				a, err := decode(rawEncode(t, tc.mk(clk.ann(i, peers[i%len(peers)]))))
				if err != nil {
					t.Fatal(err)
				}
				v.add(checked{Announcement: a}, a.Provider)
			}
			used := heapInUse() - before
			accounted := v.Counts().Bytes
			t.Logf("%d entries: %d bytes on the heap, %d accounted (%.0f and %.0f per entry)",
				tc.n, used, accounted, float64(used)/float64(tc.n), float64(accounted)/float64(tc.n))
			if float64(used) > 1.25*float64(accounted) || float64(accounted) > 1.25*float64(used) {
				t.Fatalf("accounted %d bytes for %d on the heap", accounted, used)
			}
			runtime.KeepAlive(v)
		})
	}
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

var _ heap.Interface = (*sourceHeap)(nil)
