package compress

import (
	"fmt"
	"strconv"
	"strings"
)

// Scopes of top-k selection and scale.
const (
	ScopeGlobal = "global" // one threshold and one scale over the whole task vector (the reference)
	ScopeTensor = "tensor" // a threshold and a scale per tensor
)

// DefaultDensity is the reference implementation's default.
const DefaultDensity = 0.2

// Alpha is the scale rule: Auto uses the L2-optimal scale for the kept set
// (the mean |tau| of the kept elements); otherwise scale = Value * std(tau),
// the reference rule.
type Alpha struct {
	Auto  bool
	Value float64
}

// ParseAlpha reads "auto" or a positive number.
func ParseAlpha(s string) (Alpha, error) {
	if strings.EqualFold(s, "auto") {
		return Alpha{Auto: true}, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v > 0) || v > 1e6 {
		return Alpha{}, fmt.Errorf("%w: alpha %q: want auto or a positive number", ErrOption, s)
	}
	return Alpha{Value: v}, nil
}

func (a Alpha) String() string {
	if a.Auto {
		return "auto"
	}
	return strconv.FormatFloat(a.Value, 'g', -1, 64)
}

// options configures Compress.
type options struct {
	density float64
	alpha   Alpha
	scope   string
	refit   *Refit // nil: plain ComPEFT
}

// Option configures Compress; constructors validate their argument.
type Option func(*options) error

// CheckOptions reports the first bad option (ErrOption), so a caller can
// refuse a request before it reads an expert.
func CheckOptions(opts ...Option) error {
	_, err := buildOptions(opts)
	return err
}

// WithDensity sets the kept fraction d in (0, 1]; k = floor(n*d).
func WithDensity(d float64) Option {
	return func(o *options) error {
		if !(d > 0 && d <= 1) {
			return fmt.Errorf("%w: density %v not in (0, 1]", ErrOption, d)
		}
		o.density = d
		return nil
	}
}

// WithAlpha sets the scale rule.
func WithAlpha(a Alpha) Option {
	return func(o *options) error {
		if !a.Auto && !(a.Value > 0) {
			return fmt.Errorf("%w: alpha %v must be positive", ErrOption, a.Value)
		}
		o.alpha = a
		return nil
	}
}

// WithScope sets ScopeGlobal or ScopeTensor.
func WithScope(s string) Option {
	return func(o *options) error {
		if s != ScopeGlobal && s != ScopeTensor {
			return fmt.Errorf("%w: scope %q: want %s or %s", ErrOption, s, ScopeGlobal, ScopeTensor)
		}
		o.scope = s
		return nil
	}
}

func buildOptions(opts []Option) (options, error) {
	o := options{density: DefaultDensity, alpha: Alpha{Auto: true}, scope: ScopeGlobal}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}
