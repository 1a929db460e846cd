package testutil

import (
	"context"
	"testing"
	"time"
)

// Serve runs serve (a service's Serve) until the test ends, then cancels
// its context and fails the test if it returns an error or does not return
// within a minute.
func Serve(t testing.TB, serve func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(time.Minute):
			t.Errorf("Serve did not return within a minute of its context's end")
		}
	})
}
