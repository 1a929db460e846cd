package fetch

import (
	"slices"
	"testing"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func testRoot(t *testing.T, i int) cid.Cid {
	t.Helper()
	c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}.Sum([]byte{byte(i), byte(i >> 8)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Under load a provider hands out every leaf once before any twice.
func TestSentCountsLeastFirst(t *testing.T) {
	s := newSentCounts()
	root := testRoot(t, 0)
	all := []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	var got []uint64
	for range 10 {
		got = append(got, s.least(root, 10, all, 1)...)
	}
	slices.Sort(got)
	if !slices.Equal(got, all) {
		t.Fatalf("ten offers of one leaf gave %v, want each leaf once", got)
	}
	// Only asked leaves are offered, the least sent of them.
	s.least(root, 10, []uint64{3}, 1) // leaf 3 now sent twice
	if p := s.least(root, 10, []uint64{3, 4}, 1); !slices.Equal(p, []uint64{4}) {
		t.Fatalf("offered %v of leaves 3 (sent twice) and 4 (once), want 4", p)
	}
	if p := s.least(root, 10, []uint64{7, 2, 5}, 2); len(p) != 2 || !slices.IsSorted(p) {
		t.Fatalf("offered %v, want two leaves ascending", p)
	}
}

func TestSentCountsBounded(t *testing.T) {
	s := newSentCounts()
	for i := range 3 * sentRoots {
		s.least(testRoot(t, i), 4, []uint64{0, 1}, 1)
	}
	if len(s.roots) != sentRoots || len(s.order) != sentRoots {
		t.Fatalf("remembers %d roots (%d in order), want %d", len(s.roots), len(s.order), sentRoots)
	}
}
