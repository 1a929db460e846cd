package config

import (
	"errors"
	"testing"

	"github.com/expertd/expertd/compress"
)

func TestCompressOptionsOverrides(t *testing.T) {
	def := CompressConfig{Density: 0.2, Alpha: "auto", Scope: "global"}
	if opts, err := def.Options(0, "", ""); err != nil || len(opts) != 3 {
		t.Fatalf("defaults: %d options, %v", len(opts), err)
	}
	if _, err := def.Options(0, "zero", ""); !errors.Is(err, compress.ErrOption) {
		t.Fatalf("bad alpha override: %v", err)
	}
	// Bad density or scope overrides are refused before anything is read.
	if _, err := def.Options(2, "", ""); !errors.Is(err, compress.ErrOption) {
		t.Fatalf("bad density override: %v", err)
	}
	if _, err := def.Options(0, "", "row"); !errors.Is(err, compress.ErrOption) {
		t.Fatalf("bad scope override: %v", err)
	}
}
