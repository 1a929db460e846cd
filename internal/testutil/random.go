package testutil

import (
	"encoding/binary"
	"math/rand/v2"
)

// RandomBytes returns n pseudo-random bytes determined by seed: the same
// for the same seed on every run and machine (ChaCha8).
func RandomBytes(n int, seed uint64) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}
