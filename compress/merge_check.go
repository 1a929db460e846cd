package compress

import (
	"fmt"
	"slices"
	"strings"
)

// sortedInputs returns in with each Source's tensors in name order (Load
// keeps the file's order, ReadSource the container's), sharing the data.
func sortedInputs(in []MergeInput) []MergeInput {
	out := slices.Clone(in)
	for i, x := range out {
		if x.Source == nil {
			continue
		}
		s := *x.Source
		s.Tensors = slices.Clone(s.Tensors)
		slices.SortFunc(s.Tensors, func(a, b Tensor) int { return strings.Compare(a.Name, b.Name) })
		out[i].Source = &s
	}
	return out
}

// checkMergeable refuses inputs that cannot be merged, naming the first
// input and the one that differs and what differs.
func checkMergeable(in []MergeInput) error {
	for _, x := range in {
		if x.Source == nil {
			return fmt.Errorf("%w: %s: no expert", ErrInput, x.Name)
		}
	}
	first := in[0]
	differ := func(x MergeInput, what, a, b string) error {
		return fmt.Errorf("%w: %s and %s differ in %s: %s vs %s", ErrInput, first.Name, x.Name, what, a, b)
	}
	pt := first.Source.PeftType
	switch pt {
	case PeftTypeLoRA, PeftTypeIA3, PeftTypeFull:
	default:
		return fmt.Errorf("%w: %s is a %s adapter; merge supports LORA, IA3 and FULL residuals", ErrInput, first.Name, pt)
	}
	c0, err := mergeConfig(first)
	if err != nil {
		return err
	}
	for _, x := range in[1:] {
		s := x.Source
		if s.PeftType != pt {
			return differ(x, "PEFT type", pt, s.PeftType)
		}
		if s.Base != first.Source.Base {
			return differ(x, "base model fingerprint", first.Source.Base, s.Base)
		}
		c, err := mergeConfig(x)
		if err != nil {
			return err
		}
		if c0.Base != nil && c.Base != nil && *c0.Base != *c.Base {
			return differ(x, "base_model_name_or_path", *c0.Base, *c.Base)
		}
		if a, b := c0.targets(), c.targets(); a != b {
			return differ(x, "target_modules", a, b)
		}
		if a, b := normalizeModules(c0.FeedForward), normalizeModules(c.FeedForward); a != b {
			return differ(x, "feedforward_modules", a, b)
		}
		if c0.FanInFanOut != c.FanInFanOut {
			return differ(x, "fan_in_fan_out", fmt.Sprint(c0.FanInFanOut), fmt.Sprint(c.FanInFanOut))
		}
	}
	if pt == PeftTypeLoRA {
		return checkLoRAModules(in, differ)
	}
	for _, x := range in[1:] {
		a, b := first.Source.Tensors, x.Source.Tensors
		for i := 0; i < max(len(a), len(b)); i++ {
			switch {
			case i >= len(a):
				return differ(x, "tensors", "(none)", b[i].Name)
			case i >= len(b) || a[i].Name != b[i].Name:
				return differ(x, "tensors", a[i].Name, nameAt(b, i))
			case !slices.Equal(a[i].Shape, b[i].Shape):
				return differ(x, "shape of "+a[i].Name, fmt.Sprint(a[i].Shape), fmt.Sprint(b[i].Shape))
			}
		}
	}
	return nil
}

func nameAt(ts []Tensor, i int) string {
	if i < len(ts) {
		return ts[i].Name
	}
	return "(none)"
}

// mergeConfig parses an input's adapter config and refuses the LoRA
// variants that a product-space merge does not cover.
func mergeConfig(x MergeInput) (peftConfig, error) {
	if x.Source.PeftType == PeftTypeFull {
		return peftConfig{}, nil
	}
	c, err := parsePeftConfig(x.Source.Config)
	if err != nil {
		return c, fmt.Errorf("%s: %w", x.Name, err)
	}
	switch {
	case c.UseDoRA:
		return c, fmt.Errorf("%w: %s is a DoRA adapter; merge supports plain LoRA", ErrInput, x.Name)
	case len(c.RankPattern) > 0 || len(c.AlphaPattern) > 0:
		return c, fmt.Errorf("%w: %s sets rank_pattern or alpha_pattern; merge supports one rank and alpha per adapter", ErrInput, x.Name)
	}
	return c, nil
}

// checkLoRAModules checks that every input has the same LoRA modules with
// the same in and out sizes, one rank per adapter, and nothing else.
func checkLoRAModules(in []MergeInput, differ func(MergeInput, string, string, string) error) error {
	var mods []loraPair
	for i, x := range in {
		pairs, rest, err := loraPairs(x.Source.Tensors)
		if err != nil {
			return fmt.Errorf("%s: %w", x.Name, err)
		}
		if len(rest) > 0 {
			return fmt.Errorf("%w: %s: tensor %s is not a LoRA factor; merge supports lora_A/lora_B only", ErrInput, x.Name, x.Source.Tensors[rest[0]].Name)
		}
		if len(pairs) == 0 {
			return fmt.Errorf("%w: %s has no LoRA modules", ErrInput, x.Name)
		}
		for _, p := range pairs {
			if p.R != pairs[0].R {
				return fmt.Errorf("%w: %s: module %s has rank %d, %s has %d; merge supports one rank per adapter", ErrInput, x.Name, p.Module, p.R, pairs[0].Module, pairs[0].R)
			}
		}
		if i == 0 {
			mods = pairs
			continue
		}
		for j := 0; j < max(len(mods), len(pairs)); j++ {
			switch {
			case j >= len(mods):
				return differ(x, "LoRA modules", "(none)", pairs[j].Module)
			case j >= len(pairs) || mods[j].Module != pairs[j].Module:
				m := "(none)"
				if j < len(pairs) {
					m = pairs[j].Module
				}
				return differ(x, "LoRA modules", mods[j].Module, m)
			case mods[j].In != pairs[j].In || mods[j].Out != pairs[j].Out:
				return differ(x, "shape of module "+mods[j].Module,
					fmt.Sprintf("%dx%d", mods[j].Out, mods[j].In), fmt.Sprintf("%dx%d", pairs[j].Out, pairs[j].In))
			}
		}
	}
	return nil
}
