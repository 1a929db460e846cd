package fetch

import (
	"context"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/unixfs"
	pb "github.com/expertd/expertd/proto"
)

const (
	// pollInterval is how often a running fetch asks its provider source
	// for new peers and wakes busy ones.
	pollInterval = 250 * time.Millisecond
	// A busy provider is asked again after a wait that doubles from
	// minBusyWait up to maxBusyWait (half of it random).
	minBusyWait = 500 * time.Millisecond
	maxBusyWait = 4 * time.Second
	// holdsFresh is how long what a partial holder said it holds is taken
	// as all it holds; after that it is asked again, as it may hold more.
	holdsFresh = time.Second
	// holderPatience is how long a pooled leaf waits for the partial
	// holders that claim it before a full provider may take it too.
	holderPatience = 2 * time.Second
	// knownPerSlot bounds the peers one fetch keeps track of, per peer it
	// may fetch from at once (Options.MaxProviders).
	knownPerSlot = 4
)

// holding is what a partial holder said it holds, and when.
type holding struct {
	have []bool
	at   time.Time
}

// addPeers makes new providers idle, up to knownPerSlot x MaxProviders
// known in all.
func (r *run) addPeers(ps []peer.ID) {
	for _, p := range ps {
		if len(r.idle)+len(r.active)+len(r.later) >= knownPerSlot*r.f.opts.MaxProviders {
			return
		}
		if p == r.f.host.ID() || r.idle[p] || r.asking(p) || r.excluded[p] != nil || r.f.IsBad(p) {
			continue
		}
		if _, ok := r.later[p]; ok {
			continue
		}
		r.idle[p] = true
	}
}

// asking reports whether a request to p is running.
func (r *run) asking(p peer.ID) bool {
	for w := range r.active {
		if w.peer == p {
			return true
		}
	}
	return false
}

// poll wakes the busy peers whose wait is over, takes in new providers and
// schedules.
func (r *run) poll(ctx context.Context) {
	now := time.Now()
	for p, t := range r.later {
		if now.After(t) {
			delete(r.later, p)
			r.idle[p] = true
		}
	}
	if r.src != nil {
		r.addPeers(r.src())
	}
	r.schedule(ctx)
}

// waitForHolders reports whether an idle partial holder may yet get what
// is missing: with nothing else running, the fetch waits for it.
func (r *run) waitForHolders() bool {
	for p := range r.idle {
		if _, ok := r.holds[p]; ok {
			return true
		}
	}
	return false
}

// schedule hands out pending work to idle providers, and when there is
// none, lets an idle provider take the second half of the largest remaining
// assignment.
func (r *run) schedule(ctx context.Context) {
	if r.layout != nil && len(r.parts) > 0 {
		// Shares handed back by providers that failed before their header,
		// now that another header told the layout: their missing leaves
		// go to the pool.
		for _, part := range r.parts {
			start, end := share(uint64(len(r.have)), part, r.nparts)
			for i := start; i < end; i++ {
				if !r.have[i] {
					r.pool = append(r.pool, i)
				}
			}
		}
		r.parts = nil
	}
	// Partial holders first: a full provider takes what they lack.
	var peers []peer.ID
	for p := range r.idle {
		peers = append(peers, p)
	}
	slices.SortFunc(peers, func(a, b peer.ID) int {
		_, pa := r.holds[a]
		_, pb := r.holds[b]
		switch {
		case pa && !pb:
			return -1
		case pb && !pa:
			return 1
		}
		return 0
	})
	// Leaves taken below leave the pool; the counts of the rest hold.
	var holders map[uint64]int
	now := time.Now()
	for k, p := range peers {
		if len(r.active) >= r.f.opts.MaxProviders {
			return
		}
		switch {
		case len(r.parts) > 0 && r.layout == nil:
			part := r.parts[0]
			r.parts = r.parts[1:]
			r.start(ctx, p, &pb.FetchRequest{Cid: r.root.Bytes(), Part: part, Parts: r.nparts})
		case r.layout != nil && len(r.pool) > 0:
			r.parts = nil
			if holders == nil {
				holders = r.holders(now)
			}
			cands := r.candidates(p, holders, now)
			if len(cands) == 0 {
				continue
			}
			// A fair share of what p can give, split with the idle peers
			// left.
			n := (len(cands) + len(peers) - k - 1) / (len(peers) - k)
			take := cands[:n]
			slices.Sort(take)
			for _, i := range take {
				delete(r.pooledAt, i)
			}
			r.pool = slices.DeleteFunc(r.pool, func(i uint64) bool { _, ok := slices.BinarySearch(take, i); return ok })
			r.start(ctx, p, &pb.FetchRequest{Cid: r.root.Bytes(), Ranges: toRanges(take), SkipNodes: true})
		case r.layout != nil:
			if _, partial := r.holds[p]; !partial {
				r.steal(ctx, p)
			}
		}
	}
}

// candidates lists the pooled leaves to ask p for, rarest first: those a
// partial holder said it holds (when it said so recently; else any, as it
// may hold more now); from a full provider, or one not asked yet, the
// leaves no partial holder of this fetch holds, so that a publisher's
// upload goes to what the swarm lacks, and those that waited for their
// holders longer than holderPatience (busy, slow or lying holders).
// holders counts the partial holders that say they hold each pooled leaf;
// it is what candidates ranks by.
func (r *run) holders(now time.Time) map[uint64]int {
	holders := make(map[uint64]int, len(r.pool))
	for _, i := range r.pool {
		if _, ok := r.pooledAt[i]; !ok {
			r.pooledAt[i] = now
		}
	}
	for q, h := range r.holds {
		if r.excluded[q] != nil {
			continue
		}
		for _, i := range r.pool {
			if h.have[i] {
				holders[i]++
			}
		}
	}
	return holders
}

func (r *run) candidates(p peer.ID, holders map[uint64]int, now time.Time) []uint64 {
	h, partial := r.holds[p]
	fresh := partial && now.Sub(h.at) < holdsFresh
	var out []uint64
	for _, i := range r.pool {
		switch {
		case fresh:
			if h.have[i] {
				out = append(out, i)
			}
		case partial:
			out = append(out, i)
		case holders[i] == 0 || now.Sub(r.pooledAt[i]) > holderPatience:
			out = append(out, i)
		}
	}
	slices.SortFunc(out, func(a, b uint64) int {
		if holders[a] != holders[b] {
			return holders[a] - holders[b]
		}
		return r.rank[a] - r.rank[b]
	})
	return out
}

// steal gives p the tail half of the slowest worker's remaining leaves when
// p, at its measured rate and round trip, would bring them in well before
// that worker would (its ETA over 3x p's time plus a second). Leaves the
// victim already had in flight arrive twice, so equal providers must never
// steal from each other: a healthy multi-source fetch moves every leaf once.
func (r *run) steal(ctx context.Context, p peer.ID) {
	thiefRate := r.rate[p]
	if thiefRate <= 0 {
		return
	}
	var victim *worker
	var worst time.Duration
	leaf := float64(unixfs.ChunkSize)
	for w := range r.active {
		left := w.limit - w.next
		if w.want == nil || w.cut || left < 2 {
			continue
		}
		// No block yet: assume the first arrives now (not "never"), so a
		// worker whose header just came in is not robbed.
		eta := time.Duration(left) * time.Since(w.header)
		if w.got > 0 {
			rate := float64(w.got) / time.Since(w.header).Seconds()
			eta = time.Duration(float64(left) * leaf / rate * float64(time.Second))
		}
		take := left / 2
		mine := r.rtt[p] + time.Duration(float64(take)*leaf/thiefRate*float64(time.Second))
		if eta > 3*mine+time.Second && eta > worst {
			victim, worst = w, eta
		}
	}
	if victim == nil {
		return
	}
	mid := victim.limit - (victim.limit-victim.next)/2
	take := append([]uint64(nil), victim.want[mid:victim.limit]...)
	victim.limit = mid
	r.start(ctx, p, &pb.FetchRequest{Cid: r.root.Bytes(), Ranges: toRanges(take), SkipNodes: true})
}
