package handoff

import (
	"context"
	"errors"
	"testing"
)

func TestDisabled(t *testing.T) {
	h, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Materialize(context.Background(), cidA, "x", nil); !errors.Is(err, ErrDisabled) {
		t.Errorf("Materialize: %v", err)
	}
	if err := h.Remove(context.Background(), cidA, "x"); !errors.Is(err, ErrDisabled) {
		t.Errorf("Remove: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Serve(ctx); err != nil {
		t.Errorf("Serve: %v", err)
	}
}
