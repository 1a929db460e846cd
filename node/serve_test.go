package node

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// A service that fails stops the node: Serve returns its error, named,
// once every other service stopped.
func TestServeStopsWhenAServiceFails(t *testing.T) {
	base := goleak.IgnoreCurrent()
	t.Run("node", func(t *testing.T) {
		n := newNode(t, nil, nil)
		n.apiLn.Close() // the API cannot serve
		done := make(chan error, 1)
		go func() { done <- n.Serve(context.Background()) }()
		select {
		case err := <-done:
			if err == nil || !strings.HasPrefix(err.Error(), "api: ") {
				t.Fatalf("Serve: %v, want the API's error", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Serve goes on with a failed service")
		}
	})
	if err := goleak.Find(base); err != nil {
		t.Fatal(err)
	}
}

// The lifetime's end cancels what Go started and waits for it; after it,
// Go runs nothing.
func TestLifetimeEnd(t *testing.T) {
	l := newLifetime()
	started := make(chan struct{})
	var finished atomic.Bool
	if !l.Go(func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		finished.Store(true)
	}) {
		t.Fatal("Go refused work before end")
	}
	<-started
	l.end(errStopped)
	if !finished.Load() {
		t.Fatal("end returned before the work it cancelled ended")
	}
	if context.Cause(l.ctx) != errStopped {
		t.Errorf("cause %v", context.Cause(l.ctx))
	}
	if l.Go(func(context.Context) { t.Error("ran after end") }) {
		t.Fatal("Go accepted work after end")
	}
	l.end(errStopped) // again: a no-op
}
