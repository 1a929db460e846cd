package compress

import (
	"fmt"
	"io"
)

// Encode compresses src with opts and writes the container to w. It returns
// the header written and the container's size in bytes.
func Encode(w io.Writer, src *Source, opts ...Option) (*Header, int64, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, 0, err
	}
	alpha := o.alpha.String()
	if o.refit != nil {
		if src.PeftType != PeftTypeLoRA {
			return nil, 0, fmt.Errorf("%w: --refit applies to LoRA adapters, not %s", ErrOption, describeType(src.PeftType))
		}
		alpha = AlphaRefit
	}
	coded, err := Compress(src.Tensors, opts...)
	if err != nil {
		return nil, 0, err
	}
	h := Header{
		PeftType:    src.PeftType,
		ConfigName:  src.ConfigName,
		Config:      src.Config,
		Metadata:    src.Metadata,
		Density:     o.density,
		Alpha:       alpha,
		Scope:       o.scope,
		Base:        src.Base,
		SourceBytes: src.SourceBytes,
	}
	n, err := Write(w, h, coded)
	if err != nil {
		return nil, n, err
	}
	h.Tensors = make([]TensorHeader, len(coded))
	for i := range coded {
		h.Tensors[i] = coded[i].TensorHeader
	}
	return &h, n, nil
}

// describeType names a PEFT type for an error message.
func describeType(t string) string {
	if t == PeftTypeFull {
		return "a full fine-tuning residual"
	}
	return t
}
