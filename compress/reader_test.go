package compress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// encodeOne writes a container of the given tensors, global scope.
func encodeOne(t testing.TB, ts []Tensor, d float64) []byte {
	t.Helper()
	coded, err := Compress(ts, WithDensity(d))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := Write(&buf, Header{PeftType: "LORA", Density: d, Alpha: "auto", Scope: ScopeGlobal}, coded); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReadValuesChunks: any chunking decodes the same values as Values,
// with and without a base, in sparse and dense mode.
func TestReadValuesChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, d := range []float64{0.05, 0.8} {
		ts := synthTensors(rng, []int{5000, 1, 0, 70000}, 1)
		data := encodeOne(t, ts, d)
		for _, chunk := range []int{1, 7, 4096, 100000} {
			for _, add := range []bool{false, true} {
				r, err := NewReader(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				w, err := NewReader(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				for {
					th, err := r.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					if _, err := w.Next(); err != nil {
						t.Fatal(err)
					}
					n := int(th.Elements())
					base := make([]float32, n)
					for i := range base {
						base[i] = float32(i%13) - 6
					}
					want := append([]float32(nil), base...)
					if add {
						err = w.AddTo(want)
					} else {
						want, err = w.Values(nil)
					}
					if err != nil {
						t.Fatal(err)
					}
					got := append([]float32(nil), base...)
					for i := 0; i < n; i += chunk {
						c := got[i:min(i+chunk, n)]
						if add {
							err = r.AddValues(c)
						} else {
							err = r.ReadValues(c)
						}
						if err != nil {
							t.Fatalf("d=%v chunk %d add=%v: %v", d, chunk, add, err)
						}
					}
					for i := range want {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("d=%v %s[%d] chunk %d add=%v: %v, want %v", d, th.Name, i, chunk, add, got[i], want[i])
						}
					}
					if r.Remaining() != 0 {
						t.Fatalf("%d left", r.Remaining())
					}
				}
			}
		}
	}
}

func TestReadValuesMisuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	data := encodeOne(t, synthTensors(rng, []int{100, 100}, 0), 0.2)
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ReadValues(make([]float32, 1)); err == nil {
		t.Fatal("ReadValues before Next: no error")
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadValues(make([]float32, 101)); !errors.Is(err, ErrShape) {
		t.Fatalf("past the tensor: %v", err)
	}
	if err := r.ReadValues(make([]float32, 40)); err != nil {
		t.Fatal(err)
	}
	if err := r.AddValues(make([]float32, 10)); err == nil {
		t.Fatal("AddValues after ReadValues: no error")
	}
	if _, err := r.Values(nil); err == nil {
		t.Fatal("Values after a partial read: no error")
	}
	// Next skips the rest of a partly read tensor, checking its checksum.
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Values(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last tensor: %v", err)
	}
}

// TestChecksumAfterPartialRead: damage in the part of a payload that was
// not decoded is still reported, by Next.
func TestChecksumAfterPartialRead(t *testing.T) {
	rng := rand.New(rand.NewPCG(35, 36))
	data := encodeOne(t, synthTensors(rng, []int{10000, 10}, 0), 0.2)
	h, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	// Payload 0 ends before its checksum, payload 1 and its checksum.
	end0 := int64(len(data)) - 4 - h.Header().Tensors[1].Bytes - 4
	bad := append([]byte(nil), data...)
	bad[end0-10] ^= 1
	r, err := NewReader(bytes.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadValues(make([]float32, 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrChecksum) {
		t.Fatalf("got %v, want ErrChecksum", err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrChecksum) {
		t.Fatalf("the error is not sticky: %v", err)
	}
}

// TestDecodeMemoryBounded decodes a 16M-element tensor (a 3 MiB payload)
// in 64K-element chunks: the Reader allocates its buffers (its window, the
// header's inflater) and nothing that grows with the tensor or its payload.
func TestDecodeMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("encodes 16M elements")
	}
	const n = 16 << 20
	tau := make([]float32, n)
	rng := rand.New(rand.NewPCG(37, 38))
	for i := range tau {
		if rng.IntN(3) == 0 {
			tau[i] = float32(rng.NormFloat64())
		}
	}
	data := encodeOne(t, []Tensor{{Name: "w", DType: "F32", Shape: []int64{n}, Tau: tau}}, 0.3)
	tau = nil
	chunk := make([]float32, 64<<10)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	th, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	for r.Remaining() > 0 {
		if err := r.ReadValues(chunk[:min(int64(len(chunk)), r.Remaining())]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("decoded %d elements from a %d-byte payload with %d bytes allocated", n, th.Bytes, alloc)
	if th.Bytes < 2<<20 || alloc > 1<<20 {
		t.Fatalf("payload %d bytes, %d bytes allocated: want under 1 MiB", th.Bytes, alloc)
	}
}

// TestHeaderMemory reads the header of a container holding ~170,000
// tensors, about the most 16 MiB of header JSON holds: the header is
// decoded as it streams, so allocations stay near the decoded Header's own
// size (23 MiB) instead of several copies of the document (143 MiB when it
// was inflated whole and unmarshalled).
func TestHeaderMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 170,000-tensor header")
	}
	var cs []Coded
	for i := range 170_000 {
		cs = append(cs, zeros(fmt.Sprintf("t%07d", i), "F32", 1))
	}
	var buf bytes.Buffer
	if _, err := Write(&buf, loraHeader(), cs); err != nil {
		t.Fatal(err)
	}
	cs = nil
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d-byte container of %d tensors: %.1f MiB allocated reading its header", buf.Len(), len(r.Header().Tensors), float64(alloc)/(1<<20))
	if alloc > 64<<20 {
		t.Fatalf("%d bytes allocated", alloc)
	}
}
