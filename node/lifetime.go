package node

import (
	"context"
	"errors"
	"sync"
)

// errStopped is the cause of the node's lifetime context when the node
// stops on its own (Close before Serve, say).
var errStopped = errors.New("node stopped")

// lifetime is the node's lifetime context and the background work derived
// from it: the services Serve runs, and the work calls start (a fetch the
// API asked for, an announcement, a hand-off). It is the one context the
// node keeps: New makes it, Serve ties it to its caller's, and end cancels
// it and waits for the background work.
type lifetime struct {
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu    sync.Mutex
	ended bool
	wg    sync.WaitGroup
}

func newLifetime() *lifetime {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &lifetime{ctx: ctx, cancel: cancel}
}

// Go runs f in a goroutine of its own with the lifetime context, unless
// the lifetime ended (then it returns false and f does not run).
func (l *lifetime) Go(f func(ctx context.Context)) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return false
	}
	l.wg.Go(func() { f(l.ctx) })
	return true
}

// end cancels the lifetime context with cause (if it is not cancelled
// yet) and waits for everything Go started. It may be called more than
// once.
func (l *lifetime) end(cause error) {
	l.mu.Lock()
	l.ended = true
	l.mu.Unlock()
	l.cancel(cause)
	l.wg.Wait()
}
