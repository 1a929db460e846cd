package compress

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func TestGolombRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, m := range []uint32{1, 2, 3, 4, 5, 7, 8, 69, 1000, 1 << 20} {
		g := newGolomb(m)
		var w bitWriter
		vals := []uint32{0, 1, 2, 5, 31, 32, 33, 63, 64, 100, 1 << 16}
		for range 2000 {
			vals = append(vals, uint32(rng.ExpFloat64()*float64(m)))
		}
		for _, v := range vals {
			g.encode(&w, v)
			w.write(uint64(v&1), 1)
		}
		p := w.flush()
		r := newBitReader(append(p, make([]byte, readPad)...), len(p))
		for i, v := range vals {
			got, ok := g.decode(&r, 1<<40)
			if !ok || r.n == 0 && !r.refill() {
				t.Fatalf("m=%d value %d: decode failed", m, i)
			}
			if s := r.read(1); got != uint64(v) || s != uint64(v&1) {
				t.Fatalf("m=%d value %d: got %d/%d, want %d", m, i, got, s, v)
			}
		}
		if r.overrun(int64(len(p))) || (r.consumed()+7)/8 != int64(len(p)) {
			t.Fatalf("m=%d: consumed %d bits of %d bytes", m, r.consumed(), len(p))
		}
	}
}

func TestGolombParamOptimal(t *testing.T) {
	for _, c := range []struct {
		p float64
		m uint32
	}{{0.01, 69}, {0.05, 14}, {0.1, 7}, {0.2, 3}, {0.3, 2}, {0.5, 1}} {
		if got := golombParam(c.p); got != c.m {
			t.Errorf("p=%v: m=%d, want %d", c.p, got, c.m)
		}
	}
}

// TestDecodeTensorRejectsGarbage feeds random payloads: decoding must fail
// with ErrCorrupt, or succeed with exactly the declared kept count, every
// kept element the offset plus or minus the scale and every other one the
// offset (never writing outside the tensor, never panicking). Nearly all
// must fail: a random payload is seldom exactly the codes of its counts.
func TestDecodeTensorRejectsGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const n = 500
	accepted := 0
	for i := range 5000 {
		p := make([]byte, rng.IntN(64))
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		mode := modeSparse
		if i%2 == 1 {
			mode = modeDense
		}
		tc := tensorCode{Kept: int64(rng.IntN(n + 1)), Mode: mode, M: uint32(1 + rng.IntN(9)), Payload: p}
		add := i%3 == 0
		dst := make([]float32, n) // the base is 0 when adding, as the offset is
		err := decodeTensor(dst, tc, 0, 1, add, 64*(i%2), 1+rng.IntN(600))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("case %d: %v, not ErrCorrupt", i, err)
			}
			continue
		}
		accepted++
		kept := 0
		for j, x := range dst {
			switch x {
			case 0:
			case 1, -1:
				kept++
			default:
				t.Fatalf("case %d: element %d decoded as %v, not 0 or +-1", i, j, x)
			}
		}
		if int64(kept) != tc.Kept {
			t.Fatalf("case %d: decoded %d kept elements, the code declares %d", i, kept, tc.Kept)
		}
	}
	t.Logf("%d of 5000 random payloads decoded", accepted)
	if accepted > 50 {
		t.Fatalf("%d of 5000 random payloads decoded: the decoder accepts what it should refuse", accepted)
	}
}

// decodeTensor decodes tc into dst in chunks of chunk elements, the
// payload read from memory (window 0) or streamed through a window of that
// many bytes. Like Reader, it fills a chunk with the offset first unless
// add.
func decodeTensor(dst []float32, tc tensorCode, offset float32, scale float64, add bool, window, chunk int) error {
	var d tensorDecoder
	r := newBitReader(append(tc.Payload[:len(tc.Payload):len(tc.Payload)], make([]byte, readPad)...), len(tc.Payload))
	if window > 0 {
		r = newStreamReader(make([]byte, window), &sliceSource{b: tc.Payload})
	}
	if err := d.init(r, int64(len(dst)), tc, int64(len(tc.Payload)), offset, scale, add); err != nil {
		return err
	}
	for i := 0; i < len(dst); i += chunk {
		c := dst[i:min(i+chunk, len(dst))]
		for j := range c {
			if !add {
				c[j] = offset
			}
		}
		if err := d.decode(c); err != nil {
			return err
		}
	}
	return d.finish()
}

type sliceSource struct{ b []byte }

func (s *sliceSource) read(p []byte) (int, error) {
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// TestGolombEncodeSigned: the one-write code of a value and its sign is
// bit for bit the code encode and a separate sign write give, for short
// and long codes (the fast path and the fallback).
func TestGolombEncodeSigned(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, m := range []uint32{1, 2, 3, 5, 7, 8, 69, 1000, 1 << 20, 1 << 30} {
		g := newGolomb(m)
		var want, got bitWriter
		for k := range 5000 {
			v := uint32(rng.ExpFloat64() * float64(m))
			if k%100 == 0 {
				v = m*uint32(20+rng.IntN(100)) + uint32(rng.IntN(int(m))) // long unary parts
			}
			s := uint32(k & 1)
			g.encode(&want, v)
			want.write(uint64(s), 1)
			g.encodeSigned(&got, v, s)
		}
		if w, g := want.flush(), got.flush(); string(w) != string(g) {
			t.Fatalf("m=%d: %d bytes from encodeSigned differ from the %d of encode", m, len(g), len(w))
		}
	}
}

// TestGolombDiv: the division by multiplication is exact for every
// parameter the format allows, at the edges of the 32-bit range.
func TestGolombDiv(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	ms := []uint32{1, 2, 3, 5, 7, 69, 1000, 1<<16 + 1, 1<<30 - 1, 1 << 30}
	for range 200 {
		ms = append(ms, 1+rng.Uint32N(1<<30))
	}
	for _, m := range ms {
		g := newGolomb(m)
		vs := []uint32{0, 1, m - 1, m, m + 1, 2*m - 1, 1<<32 - 1, 1<<32 - 2, (1<<32 - 1) / m * m}
		for range 1000 {
			vs = append(vs, rng.Uint32())
		}
		for _, v := range vs {
			if got := g.div(v); got != v/m {
				t.Fatalf("%d / %d: %d, want %d", v, m, got, v/m)
			}
		}
	}
}

// TestKeptSum checks that keptSum adds what encodeTensor adds, bit for bit,
// in sparse and dense codes and with threshold 0.
func TestKeptSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	xs := make([]float32, 3001)
	for i := range xs {
		if i%7 != 0 {
			xs[i] = float32(rng.NormFloat64())
		}
	}
	var sc scratch
	modes := map[string]bool{}
	for _, q := range []float64{0, 0.05, 0.5, 0.9, 1} {
		thr := uint32(0)
		if q > 0 {
			thr = absKey(float32(q * 3))
		}
		tc, wantSum, wantCnt := encodeTensor(xs, thr, &sc)
		sum, cnt := keptSum(xs, thr, &scratch{})
		if sum != wantSum || cnt != wantCnt {
			t.Errorf("thr %#x (%s code): keptSum %v, %d; encodeTensor %v, %d", thr, tc.Mode, sum, cnt, wantSum, wantCnt)
		}
		modes[tc.Mode] = true
	}
	if !modes[modeSparse] || !modes[modeDense] {
		t.Errorf("codes tried: %v, want both", modes)
	}
}

// golombParam is the smallest m with q^m (1+q) <= 1 as powInt computes it,
// whatever the logs gave: so every CPU writes the same M.
func TestGolombParamIsDefinedExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	ok := func(q float64, m uint32) bool { return float64(powInt(q, m)*q)+powInt(q, m) <= 1 }
	for range 20000 {
		n := int64(rng.IntN(1<<26) + 2)
		p := float64(rng.Int64N(n/2)+1) / float64(n)
		if p >= 0.5 {
			continue
		}
		q, m := 1-p, golombParam(p)
		if m < 1<<30 && (!ok(q, m) || m > 1 && ok(q, m-1)) {
			t.Fatalf("p %v: M %d is not the smallest m with q^m (1+q) <= 1", p, m)
		}
	}
}
