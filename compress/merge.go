package compress

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// Merge methods.
const (
	// MergeTA is task arithmetic: lambda * sum_i w_i tau_i.
	MergeTA = "ta"
	// MergeTIES is TIES-merging (Yadav et al., 2023): trim each weighted
	// update to its top Trim fraction by magnitude, elect each element's
	// sign (the sign of the sum of the trimmed updates), average the
	// trimmed updates that agree with it (disjoint mean), times lambda.
	MergeTIES = "ties"
)

// Merge defaults; docs/quality.md has the measurements they come from.
// Compressed experts (decoded from containers) need a larger lambda: the
// codec's L2-optimal scale shrinks each update, and so does compressing
// the merged one again.
const (
	DefaultLambdaTA           = 0.4 // on the sum of uncompressed updates
	DefaultLambdaTACompressed = 1.0 // on the sum, when any input was compressed
	DefaultLambdaTIES         = 1.0 // on the disjoint mean, compressed or not
	DefaultTIESTrim           = 0.2 // the TIES paper's k = 20%
	MaxMergeInputs            = 64
	// DefaultMergeDensity is the codec density of a merged expert.
	DefaultMergeDensity = 0.2
	// DefaultMergeRefit says whether a merged LoRA is compressed with the
	// refit.
	DefaultMergeRefit = true
)

// MergeMetadataKey is the safetensors metadata key under which a merged
// expert records its provenance (a JSON Provenance), so it survives
// compression, transfer and decompression.
const MergeMetadataKey = "expertd.merge"

// MergeOptions configures Merge. Zero values select the defaults.
type MergeOptions struct {
	Method  string    // MergeTA (default) or MergeTIES
	Weights []float64 // one per input (default all 1)
	// Lambda scales the combined update; 0 selects the method's default
	// (for TA the larger one when any input was compressed: Source.Density > 0).
	Lambda float64
	Trim   float64 // TIES: fraction of each update kept, in (0, 1]
	// Rank of a merged LoRA; 0 means the sum of the inputs' ranks, with
	// which task arithmetic is exact.
	Rank int
}

// MergeInput is one expert to merge.
type MergeInput struct {
	Name   string  // how errors and the provenance name it: a file, a CID
	CID    string  // its content ID, if known, recorded in the provenance
	Source *Source // from Load (an adapter directory) or ReadSource (a container)
}

// Provenance is what a merged expert records about how it was made.
type Provenance struct {
	Method  string    `json:"method"`
	Lambda  float64   `json:"lambda"`
	Weights []float64 `json:"weights"`
	Trim    float64   `json:"trim,omitempty"`
	Rank    int       `json:"rank,omitempty"`
	Parents []Parent  `json:"parents"`
}

// Parent names one merged expert.
type Parent struct {
	Name string `json:"name"`
	CID  string `json:"cid,omitempty"`
}

// Merge combines experts of one base, PEFT type and set of target modules
// into one expert, returned as a Source ready for Encode (or WriteDir).
// LoRA adapters are merged in the space of the weight update: each
// module's dW_i = scale_i B_i A_i (scale = lora_alpha / r, or / sqrt(r)
// with rsLoRA) is combined, and the result is factored again by truncated
// SVD into rank o.Rank with lora_alpha = rank (balanced factors
// U sqrt(S), sqrt(S) V^T). IA3 vectors and full fine-tuning residuals are
// merged element by element. Ranks may differ; anything else that differs
// is refused with an error naming it. The provenance is recorded in the
// result's Metadata under MergeMetadataKey and returned.
//
// Memory: the inputs, plus per LoRA module for TIES about 40 bytes per
// element of the dense out x in update (TA never forms it). ctx is checked
// between modules: a cancelled merge returns ctx.Err().
func Merge(ctx context.Context, in []MergeInput, o MergeOptions) (*Source, *Provenance, error) {
	compressed := false
	for _, x := range in {
		compressed = compressed || x.Source != nil && x.Source.Density > 0
	}
	o, err := o.withDefaults(len(in), compressed)
	if err != nil {
		return nil, nil, err
	}
	in = sortedInputs(in)
	if err := checkMergeable(in); err != nil {
		return nil, nil, err
	}
	prov := &Provenance{Method: o.Method, Lambda: o.Lambda, Weights: o.Weights}
	if o.Method == MergeTIES {
		prov.Trim = o.Trim
	}
	for _, x := range in {
		prov.Parents = append(prov.Parents, Parent{Name: x.Name, CID: x.CID})
	}
	first := in[0].Source
	out := &Source{PeftType: first.PeftType, ConfigName: first.ConfigName, Config: first.Config,
		Metadata: maps.Clone(first.Metadata), Base: first.Base}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	if first.PeftType == PeftTypeLoRA {
		rank, err := mergeLoRA(ctx, in, o, out)
		if err != nil {
			return nil, nil, err
		}
		prov.Rank = rank
		if out.Config, err = setLoRARank(out.Config, rank); err != nil {
			return nil, nil, err
		}
	} else if err := mergeVectors(ctx, in, o, out); err != nil {
		return nil, nil, err
	}
	for _, t := range out.Tensors {
		out.SourceBytes += int64(len(t.Tau)) * int64(max(dtypeSize(t.DType), 1))
	}
	pj, err := json.Marshal(prov)
	if err != nil {
		return nil, nil, err
	}
	out.Metadata[MergeMetadataKey] = string(pj)
	return out, prov, nil
}

// CheckMergeOptions reports the first bad option of a merge of n experts
// (ErrOption), so a caller can refuse a request before it reads them.
func CheckMergeOptions(o MergeOptions, n int) error {
	_, err := o.withDefaults(n, false)
	return err
}

func (o MergeOptions) withDefaults(n int, compressed bool) (MergeOptions, error) {
	if n < 2 || n > MaxMergeInputs {
		return o, fmt.Errorf("%w: merge needs 2 to %d experts, got %d", ErrOption, MaxMergeInputs, n)
	}
	switch o.Method {
	case "", MergeTA:
		o.Method = MergeTA
		if o.Lambda == 0 {
			o.Lambda = pick(compressed, DefaultLambdaTACompressed, DefaultLambdaTA)
		}
	case MergeTIES:
		if o.Lambda == 0 {
			o.Lambda = DefaultLambdaTIES
		}
		if o.Trim == 0 {
			o.Trim = DefaultTIESTrim
		}
		if !(o.Trim > 0 && o.Trim <= 1) {
			return o, fmt.Errorf("%w: TIES trim %v not in (0, 1]", ErrOption, o.Trim)
		}
	default:
		return o, fmt.Errorf("%w: merge method %q: want %s or %s", ErrOption, o.Method, MergeTA, MergeTIES)
	}
	if !finite(o.Lambda) || math.Abs(o.Lambda) > 1e6 {
		return o, fmt.Errorf("%w: lambda %v", ErrOption, o.Lambda)
	}
	if o.Weights == nil {
		o.Weights = slices.Repeat([]float64{1}, n)
	}
	if len(o.Weights) != n {
		return o, fmt.Errorf("%w: %d weights for %d experts", ErrOption, len(o.Weights), n)
	}
	for _, w := range o.Weights {
		if !finite(w) || math.Abs(w) > 1e6 {
			return o, fmt.Errorf("%w: weight %v", ErrOption, w)
		}
	}
	if o.Rank < 0 || o.Rank > 1<<16 {
		return o, fmt.Errorf("%w: rank %d", ErrOption, o.Rank)
	}
	return o, nil
}

func pick(cond bool, yes, no float64) float64 {
	if cond {
		return yes
	}
	return no
}

// mergeLoRA merges the LoRA modules of in into out and returns the rank.
func mergeLoRA(ctx context.Context, in []MergeInput, o MergeOptions, out *Source) (int, error) {
	pairs := make([][]loraPair, len(in))
	scales := make([][]float64, len(in))
	rank := o.Rank
	for i, x := range in {
		pairs[i], _, _ = loraPairs(x.Source.Tensors) // checked by checkMergeable
		cfg, _ := parsePeftConfig(x.Source.Config)
		scales[i] = make([]float64, len(pairs[i]))
		for j, p := range pairs[i] {
			s, err := cfg.scale(p.R)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", x.Name, err)
			}
			scales[i][j] = s * o.Weights[i]
		}
		if o.Rank == 0 {
			rank += pairs[i][0].R
		}
	}
	for j, p0 := range pairs[0] {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		var svd svdResult
		var err error
		if o.Method == MergeTA {
			svd, err = taModule(in, pairs, scales, j, o.Lambda, rank)
		} else {
			svd, err = tiesModule(in, pairs, scales, j, o, rank)
		}
		if err != nil {
			return 0, fmt.Errorf("module %s: %w", p0.Module, err)
		}
		b, a := svd.balanced(rank)
		ta, tb := in[0].Source.Tensors[p0.A], in[0].Source.Tensors[p0.B]
		out.Tensors = append(out.Tensors,
			Tensor{Name: ta.Name, DType: ta.DType, Shape: []int64{int64(rank), int64(p0.In)}, Tau: denseTo32(a)},
			Tensor{Name: tb.Name, DType: tb.DType, Shape: []int64{int64(p0.Out), int64(rank)}, Tau: denseTo32(b)})
	}
	return rank, nil
}

// taModule is task arithmetic of module j: sum_i lambda w_i s_i B_i A_i,
// a product of the stacked factors, factored exactly from them.
func taModule(in []MergeInput, pairs [][]loraPair, scales [][]float64, j int, lambda float64, rank int) (svdResult, error) {
	var rsum int
	for i := range in {
		rsum += pairs[i][j].R
	}
	p0 := pairs[0][j]
	bcat := mat.NewDense(p0.Out, rsum, nil)
	acat := mat.NewDense(rsum, p0.In, nil)
	off := 0
	for i, x := range in {
		p := pairs[i][j]
		a, b := x.Source.Tensors[p.A].Tau, x.Source.Tensors[p.B].Tau
		s := lambda * scales[i][j]
		for r := 0; r < p.Out; r++ {
			row := bcat.RawRowView(r)
			for c := 0; c < p.R; c++ {
				row[off+c] = s * float64(b[r*p.R+c])
			}
		}
		for c := 0; c < p.R; c++ {
			row := acat.RawRowView(off + c)
			for k := 0; k < p.In; k++ {
				row[k] = float64(a[c*p.In+k])
			}
		}
		off += p.R
	}
	return lowRankSVD(bcat, acat, rank)
}

// tiesModule is TIES of module j in product space, factored by truncated
// SVD. Each input's dense update is formed in turn; sums and counts of the
// kept positive and negative values are all that is kept across inputs.
func tiesModule(in []MergeInput, pairs [][]loraPair, scales [][]float64, j int, o MergeOptions, rank int) (svdResult, error) {
	p0 := pairs[0][j]
	n := p0.Out * p0.In
	acc := newTiesAcc(n)
	prod := mat.NewDense(p0.Out, p0.In, nil)
	for i, x := range in {
		p := pairs[i][j]
		b := mat.NewDense(p.Out, p.R, to64(x.Source.Tensors[p.B].Tau))
		a := mat.NewDense(p.R, p.In, to64(x.Source.Tensors[p.A].Tau))
		b.Scale(scales[i][j], b)
		prod.Mul(b, a)
		acc.add(prod.RawMatrix().Data, o.Trim)
	}
	merged := mat.NewDense(p0.Out, p0.In, acc.mean(o.Lambda))
	return truncatedSVD(merged, rank)
}

// tiesAcc accumulates trimmed updates for TIES: per element the sums and
// counts of the kept positive and negative values.
type tiesAcc struct {
	pos, neg   []float64
	npos, nneg []uint8 // at most MaxMergeInputs
	keep       []bool
	top        topScratch
}

func newTiesAcc(n int) *tiesAcc {
	return &tiesAcc{pos: make([]float64, n), neg: make([]float64, n), npos: make([]uint8, n), nneg: make([]uint8, n),
		keep: make([]bool, n)}
}

// add trims x to its floor(n*trim) largest magnitudes and accumulates it.
func (t *tiesAcc) add(x []float64, trim float64) {
	topK(x, int(math.Floor(float64(len(x))*trim)), t.keep, &t.top)
	for i, v := range x {
		switch {
		case !t.keep[i]:
		case v > 0:
			t.pos[i] += v
			t.npos[i]++
		default:
			t.neg[i] += v
			t.nneg[i]++
		}
	}
}

// mean is lambda times the disjoint mean: the mean of the kept values
// whose sign is the elected one, the sign of their sum (ties go to the
// side with more values, then to positive).
func (t *tiesAcc) mean(lambda float64) []float64 {
	out := make([]float64, len(t.pos))
	for i := range out {
		sum := t.pos[i] + t.neg[i]
		switch {
		case t.npos[i] == 0 && t.nneg[i] == 0:
		case sum > 0 || sum == 0 && t.npos[i] >= t.nneg[i]:
			out[i] = lambda * t.pos[i] / float64(t.npos[i])
		default:
			out[i] = lambda * t.neg[i] / float64(t.nneg[i])
		}
	}
	return out
}

// mergeVectors merges IA3 vectors or residuals element by element.
func mergeVectors(ctx context.Context, in []MergeInput, o MergeOptions, out *Source) error {
	for k, t0 := range in[0].Source.Tensors {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := len(t0.Tau)
		var res []float64
		if o.Method == MergeTA {
			res = make([]float64, n)
			for i, x := range in {
				w := o.Lambda * o.Weights[i]
				for e, v := range x.Source.Tensors[k].Tau {
					res[e] += float64(w * float64(v))
				}
			}
		} else {
			acc := newTiesAcc(n)
			buf := make([]float64, n)
			for i, x := range in {
				for e, v := range x.Source.Tensors[k].Tau {
					buf[e] = o.Weights[i] * float64(v)
				}
				acc.add(buf, o.Trim)
			}
			res = acc.mean(o.Lambda)
		}
		tau := make([]float32, n)
		for e, v := range res {
			tau[e] = float32(v)
		}
		out.Tensors = append(out.Tensors, Tensor{Name: t0.Name, DType: t0.DType, Shape: slices.Clone(t0.Shape), Tau: tau, Offset: t0.Offset})
	}
	return nil
}

func denseTo32(d *mat.Dense) []float32 {
	m, n := d.Dims()
	out := make([]float32, 0, m*n)
	for i := 0; i < m; i++ {
		for _, v := range d.RawRowView(i) {
			out = append(out, float32(v))
		}
	}
	return out
}
