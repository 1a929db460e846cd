package compress

import (
	"bytes"
	"math"
	"testing"
)

// TestKeptCountReachable backs checkCode's claim that no kept count is
// inconsistent with the density: for n elements at density d (k =
// floor(n*d)) the encoder keeps k+1 elements of distinct magnitudes, all n
// when they tie, and none when they are all zero (IA3 offsets or not, scope
// global or tensor), and the decoder takes every such container.
func TestKeptCountReachable(t *testing.T) {
	const n, d = 1000, 0.2
	k := int64(math.Floor(n * d))
	distinct, ties, zeros := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range distinct {
		distinct[i] = float32(i+1) * 0.001
		ties[i] = 0.5
	}
	for _, c := range []struct {
		what string
		tau  []float32
		want int64
	}{
		{"distinct magnitudes", distinct, k + 1},
		{"all tied", ties, n},
		{"all zero", zeros, 0},
	} {
		for _, scope := range []string{ScopeGlobal, ScopeTensor} {
			for _, offset := range []float32{0, 1} {
				ts := []Tensor{{Name: "w", DType: "F32", Shape: []int64{n}, Tau: c.tau, Offset: offset}}
				coded, err := Compress(ts, WithDensity(d), WithScope(scope))
				if err != nil {
					t.Fatal(err)
				}
				if coded[0].Kept != c.want {
					t.Errorf("%s, %s, offset %v: kept %d, want %d", c.what, scope, offset, coded[0].Kept, c.want)
				}
				var buf bytes.Buffer
				if _, err := Write(&buf, Header{PeftType: "IA3", Density: d, Alpha: "auto", Scope: scope}, coded); err != nil {
					t.Fatal(err)
				}
				if err := decodeAll(buf.Bytes()); err != nil {
					t.Errorf("%s, %s, offset %v: %v", c.what, scope, offset, err)
				}
			}
		}
	}
}
