package compress

import (
	"fmt"
	"math"
	"sort"
)

// MaxTensorElements bounds one tensor (gaps are coded in 32 bits).
const MaxTensorElements = 1<<31 - 1

// Tensor is one named tensor of a task vector.
type Tensor struct {
	Name  string
	DType string  // source dtype, restored on decompression
	Shape []int64 // source shape
	Tau   []float32
	// Offset is added back on decompression when no base model is given:
	// 1 for IA3 vectors, 0 otherwise.
	Offset float32
}

// Coded is one compressed tensor: its description and its payload.
type Coded struct {
	TensorHeader
	Payload []byte
}

// Compress applies ComPEFT to the task vector ts: for each scope (the whole
// vector, or each tensor) it keeps the elements with |tau| >= the (n-k)-th
// smallest |tau|, k = floor(n*density) (the reference's tie rule), and codes
// them as sign(tau) times one scale. Tensors are processed in name order.
// WithRefit replaces the choice for LoRA factors (see Refit).
func Compress(ts []Tensor, opts ...Option) ([]Coded, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.refit != nil {
		return compressRefit(ts, o)
	}
	out, _, err := compressWith(ts, o, nil)
	return out, err
}

// compressWith is Compress without the refit. It also returns each
// tensor's selection threshold: element x is kept iff
// absKey(x) >= max(thr, 1). The tensors later names are not coded: their
// Coded holds only the scale, and the caller codes them.
func compressWith(ts []Tensor, o options, later func(name string) bool) ([]Coded, []uint32, error) {
	ts = append([]Tensor(nil), ts...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	for i, t := range ts {
		if i > 0 && ts[i-1].Name == t.Name {
			return nil, nil, fmt.Errorf("%w: duplicate tensor %q", ErrInput, t.Name)
		}
		if int64(len(t.Tau)) != numElements(t.Shape) {
			return nil, nil, fmt.Errorf("%w: tensor %q has %d values for shape %v", ErrShape, t.Name, len(t.Tau), t.Shape)
		}
		if len(t.Tau) > MaxTensorElements {
			return nil, nil, fmt.Errorf("%w: tensor %q has %d elements (max %d)", ErrTooLarge, t.Name, len(t.Tau), MaxTensorElements)
		}
	}
	out := make([]Coded, len(ts))
	thrs := make([]uint32, len(ts))
	w := encodeWorkers(ts)
	scs := make([]scratch, w)
	// The kept set's sum and size of each tensor, for the auto scale, are
	// added in tensor order.
	sums := make([]float64, len(ts))
	cnts := make([]int64, len(ts))
	if o.scope == ScopeGlobal {
		taus := make([][]float32, len(ts))
		for i, t := range ts {
			taus[i] = t.Tau
		}
		thr, scale, err := selectScope(taus, o, w)
		if err != nil {
			return nil, nil, err
		}
		forEach(len(ts), w, func(g, i int) error {
			thrs[i] = thr
			sums[i], cnts[i] = codeOrSum(&out[i], ts[i], thr, later, &scs[g])
			return nil
		})
		if o.alpha.Auto {
			scale = meanOrZero(sumInOrder(sums), sumCounts(cnts))
		}
		for i := range out {
			out[i].Scale = scale
		}
		return out, thrs, nil
	}
	err := forEach(len(ts), w, func(g, i int) error {
		t := ts[i]
		thr, scale, err := selectScope([][]float32{t.Tau}, o, 1)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		thrs[i] = thr
		sum, cnt := codeOrSum(&out[i], t, thr, later, &scs[g])
		if o.alpha.Auto {
			scale = meanOrZero(sum, cnt)
		}
		out[i].Scale = scale
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return out, thrs, nil
}

// encodeScratch bounds the scratch memory of the goroutines that encode
// tensors at once (the tensors themselves are in memory already).
const encodeScratch = 256 << 20

// encodeWorkers is how many goroutines encode ts: a worker needs about 5
// bytes per element of the largest tensor (kept positions and payload)
// and two 512 KiB histograms.
func encodeWorkers(ts []Tensor) int {
	var n int64
	for _, t := range ts {
		n = max(n, int64(len(t.Tau)))
	}
	return poolSize(len(ts), 5*n+1<<20, encodeScratch)
}

// selectScope returns the magnitude threshold key and the reference scale
// alpha*std (unbiased, float64) of one selection scope, scanning it on w
// goroutines.
func selectScope(taus [][]float32, o options, w int) (uint32, float64, error) {
	m := new(moments)
	if err := m.scan(taus, w); err != nil {
		return 0, 0, err
	}
	if m.n == 0 {
		return 0, 0, nil
	}
	k := int64(math.Floor(float64(m.n) * o.density))
	thr, ssd := threshold(taus, m, m.n-k, w, !o.alpha.Auto) // auto needs no std
	sigma := 0.0
	if m.n > 1 {
		sigma = math.Sqrt(ssd / float64(m.n-1))
	}
	return thr, o.alpha.Value * sigma, nil
}

func sumCounts(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}

func meanOrZero(sum float64, cnt int64) float64 {
	if cnt == 0 {
		return 0
	}
	return sum / float64(cnt)
}

// codeOne codes t into c (all but the scale) and returns the kept set's
// sum of magnitudes and size.
func codeOne(c *Coded, t Tensor, thr uint32, sc *scratch) (float64, int64) {
	tc, sum, cnt := encodeTensor(t.Tau, thr, sc)
	setCoded(c, t, tc)
	return sum, cnt
}

// setCoded sets c (all but the scale) to t's description and the code tc,
// copying its payload.
func setCoded(c *Coded, t Tensor, tc tensorCode) {
	payload := append([]byte(nil), tc.Payload...)
	*c = Coded{
		TensorHeader: TensorHeader{
			Name:   t.Name,
			DType:  t.DType,
			Shape:  append([]int64(nil), t.Shape...),
			Offset: t.Offset,
			Kept:   tc.Kept,
			Mode:   tc.Mode,
			M:      tc.M,
			Bytes:  int64(len(payload)),
		},
		Payload: payload,
	}
}

// codeOrSum is codeOne, or only its sum and count for a tensor later
// names.
func codeOrSum(c *Coded, t Tensor, thr uint32, later func(string) bool, sc *scratch) (float64, int64) {
	if later != nil && later(t.Name) {
		return keptSum(t.Tau, thr, sc)
	}
	return codeOne(c, t, thr, sc)
}

// numElements is the product of shape, or -1 on a negative dimension or
// overflow.
func numElements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		if d < 0 || (d > 0 && n > math.MaxInt64/d) {
			return -1
		}
		n *= d
	}
	return n
}
