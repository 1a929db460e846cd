package testutil

import (
	"context"
	"testing"
)

func TestServeEndsWithTheTest(t *testing.T) {
	ended := make(chan struct{})
	t.Run("served", func(t *testing.T) {
		Serve(t, func(ctx context.Context) error {
			<-ctx.Done()
			close(ended)
			return nil
		})
		select {
		case <-ended:
			t.Fatal("Serve's context ended before the test")
		default:
		}
	})
	<-ended // the subtest's cleanup ended it
}
