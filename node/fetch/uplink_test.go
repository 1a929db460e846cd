package fetch

import (
	"testing"
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

// While others are served, uplinkBacklog streams may wait; alone, any.
func TestUplinkBacklog(t *testing.T) {
	u := newUplink()
	var done []func()
	for i := range uplinkBacklog {
		d, ok := u.queue(true)
		if !ok {
			t.Fatalf("stream %d refused", i)
		}
		done = append(done, d)
	}
	if _, ok := u.queue(true); ok {
		t.Fatalf("stream %d taken while loaded", uplinkBacklog+1)
	}
	d, ok := u.queue(false)
	if !ok {
		t.Fatal("a stream nobody else wants the expert for was refused")
	}
	d()
	done[0]()
	if _, ok := u.queue(true); !ok {
		t.Fatal("refused after one left the line")
	}
}
