package compress

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The codec uses the cores by running independent jobs (one per tensor)
// on a bounded pool of goroutines. Each job writes only its own results;
// whatever combines them (sums of floats, the order of a file) does so in
// tensor order afterwards, so the output is the same bytes whatever the
// number of workers.

// poolSize is how many goroutines run n jobs that need up to perJob bytes
// of scratch each: at most GOMAXPROCS and n, and as many as budget bytes
// of scratch allow, but at least one.
func poolSize(n int, perJob, budget int64) int {
	w := min(runtime.GOMAXPROCS(0), n)
	if perJob > 0 {
		w = min(w, int(budget/perJob))
	}
	return max(w, 1)
}

// forEach runs job(worker, i) for i in [0, n) on w goroutines (worker in
// [0, w) names the goroutine, for its scratch), handing out indices in
// increasing order. Once a job fails no further index is handed out, and
// forEach returns the error of the lowest index that failed: the error a
// sequential loop would have stopped at, since every lower index was
// handed out before it and runs to its end.
func forEach(n, w int, job func(worker, i int) error) error {
	if w <= 1 || n <= 1 {
		for i := range n {
			if err := job(0, i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		next   atomic.Int64
		failed atomic.Bool
		mu     sync.Mutex
		first  = n
		ferr   error
		wg     sync.WaitGroup
	)
	for g := range min(w, n) {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := job(g, i); err != nil {
					mu.Lock()
					if i < first {
						first, ferr = i, err
					}
					mu.Unlock()
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	return ferr
}

// budget is a count of bytes that goroutines take and give back, waiting
// while too few are left: it bounds the memory of work in flight.
type budget struct {
	mu   sync.Mutex
	cond *sync.Cond
	left int64
	size int64
}

func newBudget(size int64) *budget {
	b := &budget{left: size, size: size}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// take waits until n bytes (at most the whole budget) are free and takes
// them; it returns what it took, for give.
func (b *budget) take(n int64) int64 {
	n = min(n, b.size)
	b.mu.Lock()
	for b.left < n {
		b.cond.Wait()
	}
	b.left -= n
	b.mu.Unlock()
	return n
}

func (b *budget) give(n int64) {
	b.mu.Lock()
	b.left += n
	b.mu.Unlock()
	b.cond.Broadcast()
}
