package fetch

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// A BUSY answer's wait is a leaf's time over the streams sending.
func TestUplinkRetry(t *testing.T) {
	u := newUplink()
	if got := u.retry(); got != minRetry {
		t.Fatalf("retry before any leaf went: %v, want %v", got, minRetry)
	}
	u.wrote(1200 * time.Millisecond)
	if got, want := u.retry(), 1200*time.Millisecond/uplinkBacklog; got != want {
		t.Fatalf("retry after a leaf of 1.2s: %v, want %v", got, want)
	}
	u.wrote(400 * time.Millisecond) // averaged: 1 s
	if got, want := u.retry(), time.Second/uplinkBacklog; got != want {
		t.Fatalf("retry: %v, want %v", got, want)
	}
}

// While others are served, uplinkBacklog streams may send and one wait
// in line, up to a leaf's time; alone, any may send.
func TestUplinkBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		u := newUplink()
		u.wrote(400 * time.Millisecond)
		var done []func()
		for i := range uplinkBacklog {
			d, ok := u.queue(ctx, true)
			if !ok {
				t.Fatalf("stream %d refused", i)
			}
			done = append(done, d)
		}
		began := time.Now()
		if _, ok := u.queue(ctx, true); ok {
			t.Fatalf("stream %d taken while loaded and nobody left", uplinkBacklog+1)
		}
		if waited := time.Since(began); waited != 400*time.Millisecond {
			t.Fatalf("waited in line %v, want a leaf's time (400ms)", waited)
		}
		d, ok := u.queue(ctx, false)
		if !ok {
			t.Fatal("a stream nobody else wants the expert for was refused")
		}
		d()

		// One waits in line and takes the place of the first to end; a
		// second finds the line taken and is refused at once.
		type result struct {
			done func()
			ok   bool
			at   time.Duration
		}
		got := make(chan result)
		began = time.Now()
		go func() {
			d, ok := u.queue(ctx, true)
			got <- result{d, ok, time.Since(began)}
		}()
		synctest.Wait()
		if _, ok := u.queue(ctx, true); ok || time.Since(began) != 0 {
			t.Fatal("a second stream in line")
		}
		time.Sleep(100 * time.Millisecond)
		done[0]()
		r := <-got
		if !r.ok || r.at != 100*time.Millisecond {
			t.Fatalf("in line: ok %v after %v, want true after 100ms (when one ended)", r.ok, r.at)
		}
		r.done()
		for _, d := range done[1:] {
			d()
		}
		if u.waiting.Load() != 0 {
			t.Fatalf("%d streams counted after all ended", u.waiting.Load())
		}
	})
}
