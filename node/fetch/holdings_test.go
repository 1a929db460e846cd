package fetch

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	cid "github.com/ipfs/go-cid"
)

// countingHas counts the store lookups of held leaves.
type countingHas struct {
	*memBlocks
	has atomic.Int64
}

func (c *countingHas) HasBlock(k cid.Cid) (bool, error) {
	c.has.Add(1)
	return c.memBlocks.HasBlock(k)
}

// A storm of requests for one expert reads the store once per holdingsTTL,
// not once per leaf per request; a leaf stored meanwhile counts at once, a
// leaf gone counts as gone after holdingsTTL.
func TestHoldingsCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data := randomBytes(5<<20, 43)
		full := newMem()
		l := addFile(t, full, data)
		part := &countingHas{memBlocks: newMem()}
		for _, i := range []int{0, 2} {
			b, _ := full.GetBlock(l.Leaves[i].Cid)
			if err := part.PutBlock(l.Leaves[i].Cid, b); err != nil {
				t.Fatal(err)
			}
		}
		p := NewProvider(nil, part, ProviderOptions{}) // no host: holdings reads only the store
		holds := func() []bool {
			t.Helper()
			have, err := p.holdings(l)
			if err != nil {
				t.Fatal(err)
			}
			var out []bool
			for i := range l.Leaves {
				out = append(out, have[i/8]&(1<<(i%8)) != 0)
			}
			return out
		}
		for range 20 {
			holds()
		}
		if n := part.has.Load(); n != int64(len(l.Leaves)) {
			t.Errorf("20 requests read the store %d times, want once per leaf (%d)", n, len(l.Leaves))
		}
		// A fetch stores leaf 3: it is offered at once.
		b, _ := full.GetBlock(l.Leaves[3].Cid)
		if err := part.PutBlock(l.Leaves[3].Cid, b); err != nil {
			t.Fatal(err)
		}
		p.Stored(l.Root, 3)
		if got := holds(); !got[0] || got[1] || !got[2] || !got[3] || got[4] {
			t.Errorf("after storing leaf 3: holds %v, want leaves 0, 2 and 3", got)
		}
		// Leaf 0 is removed: after holdingsTTL the store is read again.
		part.memBlocks = newMem()
		for _, i := range []int{2, 3} {
			b, _ := full.GetBlock(l.Leaves[i].Cid)
			if err := part.PutBlock(l.Leaves[i].Cid, b); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(holdingsTTL)
		if got := holds(); got[0] || !got[2] || !got[3] {
			t.Errorf("a second after removing leaf 0: holds %v, want leaves 2 and 3", got)
		}
	})
}

// hookHas calls hook before each lookup, with the lookup's number.
type hookHas struct {
	*memBlocks
	n    int
	hook func(n int)
}

func (h *hookHas) HasBlock(k cid.Cid) (bool, error) {
	h.n++
	h.hook(h.n)
	return h.memBlocks.HasBlock(k)
}

// A leaf stored while the bitmap is read from the store (after its lookup)
// must not be lost: the bitmap read meanwhile is not kept, and the next
// request reads the store again. A watch that took the stale bitmap would
// wait for a Have that never comes.
func TestHoldingsCacheStoredDuringRead(t *testing.T) {
	data := randomBytes(6<<20, 45)
	full := newMem()
	l := addFile(t, full, data) // six leaves
	var p *Provider
	part := &hookHas{memBlocks: newMem()}
	part.hook = func(n int) {
		if n == 6 { // the last leaf's lookup: leaf 4's came before
			b, _ := full.GetBlock(l.Leaves[4].Cid)
			if err := part.PutBlock(l.Leaves[4].Cid, b); err != nil {
				t.Error(err)
			}
			p.Stored(l.Root, 4)
		}
	}
	p = NewProvider(nil, part, ProviderOptions{}) // no host: holdings reads only the store
	for range 2 {
		if _, err := p.holdings(l); err != nil {
			t.Fatal(err)
		}
	}
	have, err := p.holdings(l)
	if err != nil {
		t.Fatal(err)
	}
	if have[0]&(1<<4) == 0 {
		t.Fatal("leaf 4, stored while the bitmap was read, is missing from a later request's bitmap")
	}
}
