package unixfs

import (
	"encoding/binary"
	"io"
)

// testInput returns the deterministic input of the golden tests: size bytes
// of splitmix64 output seeded with size, each word little-endian. The
// throwaway boxo program that produced the golden CIDs used the same
// generator.
func testInput(size int64) io.Reader {
	return &splitmix{state: uint64(size), left: size, used: 8}
}

type splitmix struct {
	state uint64
	left  int64
	word  [8]byte
	used  int // bytes of word already returned
}

func (g *splitmix) next() uint64 {
	g.state += 0x9e3779b97f4a7c15
	z := g.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (g *splitmix) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n := 0
	for n < len(p) {
		if g.used == 8 && len(p)-n >= 8 {
			binary.LittleEndian.PutUint64(p[n:], g.next())
			n += 8
			continue
		}
		if g.used == 8 {
			binary.LittleEndian.PutUint64(g.word[:], g.next())
			g.used = 0
		}
		p[n] = g.word[g.used]
		g.used++
		n++
	}
	g.left -= int64(n)
	return n, nil
}
