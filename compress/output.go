package compress

import (
	"fmt"
	"math"

	"github.com/expertd/expertd/compress/safetensors"
)

// What a container expands to is declared in its header, and a few hundred
// bytes of header can declare terabytes of zeros: no kept-count or density
// check can tell such a container from a real all-zero one (see
// checkCode). So the declared output is checked against a limit and the
// free space before anything is written.

// DefaultMaxOutput is the most bytes Expand writes for one container when
// ExpandOptions.MaxOutput is 0 (store.max_output_size's default).
const DefaultMaxOutput = 16 << 30

// MaxSourceElementSize is the widest element the codec restores (F64), so
// a bound on the output of an expert whose dtypes are unknown.
const MaxSourceElementSize = 8

// OutputBytes is what Expand writes for h with dtype ("" or "source" keeps
// each tensor's): the weights file (safetensors header and data) and the
// config file.
func OutputBytes(h *Header, dtype string) (int64, error) {
	dt, err := ParseDType(dtype)
	if err != nil {
		return 0, err
	}
	p, err := weightsPlan(h, dt)
	if err != nil {
		return 0, err
	}
	return outputBytes(h, p)
}

// weightsPlan lays out the weights file Expand writes for h with dtype ("" for
// each tensor's).
func weightsPlan(h *Header, dtype string) (*safetensors.Plan, error) {
	p, err := safetensors.NewPlan(h.Metadata, weightInfos(h, dtype))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return p, nil
}

// outputBytes is the weights file of plan p and h's config.
func outputBytes(h *Header, p *safetensors.Plan) (int64, error) {
	if n := p.Size(); n <= math.MaxInt64-int64(len(h.Config)) {
		return n + int64(len(h.Config)), nil
	}
	return 0, fmt.Errorf("%w: output size overflows", ErrCorrupt)
}

// weightInfos lists the tensors of the weights file Expand writes for h:
// dtype ("" for each tensor's source dtype) and shape.
func weightInfos(h *Header, dtype string) []safetensors.TensorInfo {
	infos := make([]safetensors.TensorInfo, len(h.Tensors))
	for i, t := range h.Tensors {
		dt := t.DType
		if dtype != "" {
			dt = dtype
		}
		infos[i] = safetensors.TensorInfo{Name: t.Name, DType: safetensors.DType(dt), Shape: t.Shape}
	}
	return infos
}

// ParamsOutputBytes bounds the weights an expert of params elements expands
// to with dtype: params times its element size or, when dtype keeps the
// source's ("" or "source"), times MaxSourceElementSize. It is meant for
// what is known before a container is fetched (a gossip announcement's
// Params); it saturates instead of overflowing, and a negative params
// counts as 0.
func ParamsOutputBytes(params int64, dtype string) int64 {
	size := int64(MaxSourceElementSize)
	if dt, err := ParseDType(dtype); err == nil && dt != "" {
		size = int64(dtypeSize(dt))
	}
	if params <= 0 {
		return 0
	}
	if params > math.MaxInt64/size {
		return math.MaxInt64
	}
	return params * size
}

// CheckOutput reports, wrapping ErrOutputLimit, whether n bytes of output
// are over limit: 0 means DefaultMaxOutput, a negative limit none. A node
// uses it with OutputBytes of a fetched container's header, or with
// ParamsOutputBytes of an announcement to skip a prefetch.
func CheckOutput(n, limit int64) error {
	if limit == 0 {
		limit = DefaultMaxOutput
	}
	if limit > 0 && n > limit {
		return fmt.Errorf("%w: the expert expands to %s, the limit is %s", ErrOutputLimit, humanBytes(n), humanBytes(limit))
	}
	return nil
}

// HumanBytes renders n bytes with a binary unit and the exact count, as
// the package's errors do: "16.0 GiB (17179869184 bytes)".
func HumanBytes(n int64) string { return humanBytes(n) }

func humanBytes(n int64) string {
	const unit = 1 << 10
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTPE"[exp], n)
}
