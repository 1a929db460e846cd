package fetch

import (
	"fmt"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/node/unixfs"
)

const (
	// holdingsTTL is how long a provider reuses the bitmap of the leaves it
	// holds of an expert: a storm of requests for it (each BUSY answer and
	// each partial offer carries the bitmap) reads the store once per
	// holdingsTTL, not once per leaf per request. A leaf stored meanwhile
	// is added at once (Provider.Stored); one removed is offered for
	// holdingsTTL at most, and its read then fails the request.
	holdingsTTL = time.Second
	// holdingsRoots bounds the experts whose bitmaps are kept.
	holdingsRoots = 64
)

// holdingsCache keeps the provider's last bitmaps of held leaves.
type holdingsCache struct {
	mu    sync.Mutex
	roots map[cid.Cid]*heldLeaves
	order []cid.Cid // oldest first
	// stores counts the leaves stored (any expert's): a bitmap read from
	// the store while one was stored may lack it, and is not kept.
	stores uint64
}

type heldLeaves struct {
	have []byte // FetchHeader.have of every leaf
	at   time.Time
}

func newHoldingsCache() *holdingsCache { return &holdingsCache{roots: map[cid.Cid]*heldLeaves{}} }

// get returns a copy of root's bitmap for n leaves if computed less than
// holdingsTTL before now; else, the count of leaves stored so far, to
// pass to put with the bitmap read from the store.
func (c *holdingsCache) get(root cid.Cid, n int, now time.Time) (have []byte, gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.roots[root]
	if h == nil || len(h.have) != (n+7)/8 || now.Sub(h.at) >= holdingsTTL {
		return nil, c.stores, false
	}
	return append([]byte(nil), h.have...), c.stores, true
}

// put keeps have as root's bitmap, computed at now from a read of the
// store begun at generation gen, unless a leaf was stored since.
func (c *holdingsCache) put(root cid.Cid, have []byte, now time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stores != gen {
		return
	}
	if _, ok := c.roots[root]; !ok {
		if len(c.order) >= holdingsRoots {
			delete(c.roots, c.order[0])
			c.order = c.order[1:]
		}
		c.order = append(c.order, root)
	}
	c.roots[root] = &heldLeaves{have: append([]byte(nil), have...), at: now}
}

// stored sets leaf in root's bitmap, if kept.
func (c *holdingsCache) stored(root cid.Cid, leaf uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stores++
	if h := c.roots[root]; h != nil && leaf/8 < uint64(len(h.have)) {
		h.have[leaf/8] |= 1 << (leaf % 8)
	}
}

// holdings is the bitmap of the leaves held (FetchHeader.have).
func (p *Provider) holdings(layout *unixfs.Layout) ([]byte, error) {
	now := time.Now()
	have, gen, ok := p.held.get(layout.Root, len(layout.Leaves), now)
	if ok {
		return have, nil
	}
	have = make([]byte, (len(layout.Leaves)+7)/8)
	for i, leaf := range layout.Leaves {
		ok, err := p.blocks.HasBlock(leaf.Cid)
		if err != nil {
			return nil, fmt.Errorf("leaf %d: %w", i, err)
		}
		if ok {
			have[i/8] |= 1 << (i % 8)
		}
	}
	p.held.put(layout.Root, have, now, gen)
	return have, nil
}

// offerable returns what a provider may offer of layout's leaves: those it
// holds and, unless it holds them all (whole), those that flow here (it
// is receiving them, and serves them as their pieces verify).
func (p *Provider) offerable(layout *unixfs.Layout) (have []byte, whole bool, err error) {
	if have, err = p.holdings(layout); err != nil {
		return nil, false, err
	}
	if allHeld(have, len(layout.Leaves)) {
		return have, true, nil
	}
	p.flows.flowing(layout.Root, have)
	return have, false, nil
}
