package config

import "github.com/expertd/expertd/compress"

// Options returns the codec options of these defaults with the non-zero
// overrides applied (a publish request's density, alpha and scope). A bad
// override fails with compress.ErrOption.
func (c CompressConfig) Options(density float64, alpha, scope string) ([]compress.Option, error) {
	if density != 0 {
		c.Density = density
	}
	if alpha != "" {
		c.Alpha = alpha
	}
	if scope != "" {
		c.Scope = scope
	}
	a, err := compress.ParseAlpha(c.Alpha)
	if err != nil {
		return nil, err
	}
	opts := []compress.Option{compress.WithDensity(c.Density), compress.WithAlpha(a), compress.WithScope(c.Scope)}
	if err := compress.CheckOptions(opts...); err != nil {
		return nil, err
	}
	return opts, nil
}
