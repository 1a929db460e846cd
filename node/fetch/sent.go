package fetch

import (
	"math/rand/v2"
	"slices"
	"sync"

	cid "github.com/ipfs/go-cid"
)

// sentRoots bounds the experts whose leaf counts a provider remembers.
const sentRoots = 64

// sentCounts counts how often a provider offered each leaf of the experts
// it served last, for offer's choice under load.
type sentCounts struct {
	mu    sync.Mutex
	roots map[cid.Cid][]uint32
	order []cid.Cid // oldest first
}

func newSentCounts() *sentCounts { return &sentCounts{roots: map[cid.Cid][]uint32{}} }

// least picks n of the candidate leaves cands of root (an expert of leaves
// leaves) that were offered least, ties at random, counts them as offered
// and returns them ascending.
func (s *sentCounts) least(root cid.Cid, leaves int, cands []uint64, n int) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts, ok := s.roots[root]
	if !ok || len(counts) != leaves {
		if len(s.order) >= sentRoots {
			delete(s.roots, s.order[0])
			s.order = s.order[1:]
		}
		counts = make([]uint32, leaves)
		s.roots[root] = counts
		s.order = append(s.order, root)
	}
	pick := slices.Clone(cands)
	rand.Shuffle(len(pick), func(i, j int) { pick[i], pick[j] = pick[j], pick[i] })
	slices.SortStableFunc(pick, func(a, b uint64) int { return int(counts[a]) - int(counts[b]) })
	pick = pick[:n]
	for _, i := range pick {
		counts[i]++
	}
	slices.Sort(pick)
	return pick
}
