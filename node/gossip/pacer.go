package gossip

import (
	"context"
	"sync"
	"time"
)

// pacer spaces events at least interval apart (a token bucket of one).
type pacer struct {
	interval time.Duration

	mu   sync.Mutex
	next time.Time // earliest time of the next event
}

// wait blocks until the next event may happen, or ctx is done.
func (p *pacer) wait(ctx context.Context) error {
	p.mu.Lock()
	now := time.Now()
	at := p.next
	if at.Before(now) {
		at = now
	}
	p.next = at.Add(p.interval)
	p.mu.Unlock()
	d := at.Sub(now)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
