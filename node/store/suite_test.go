package store_test

import (
	"testing"

	"github.com/expertd/expertd/node/store"
	"github.com/expertd/expertd/node/store/storetest"
)

func TestBlockStoreConformance(t *testing.T) {
	storetest.BlockStore(t, func(t *testing.T) store.BlockStore {
		s, err := store.Open(t.TempDir(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
