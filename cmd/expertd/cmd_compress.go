package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/internal/atomicfile"
	"github.com/expertd/expertd/node/config"
)

func newCompressCmd(v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "compress ADAPTER_DIR -o FILE.cpeft",
		Short: "Compress a PEFT adapter (or a fine-tuned model with --base) into a .cpeft container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := v.GetString("compress.output")
			if out == "" {
				return fmt.Errorf("compress: -o FILE.cpeft is required")
			}
			// The options and the output are checked before the adapter is read.
			if err := checkOutputFile(out); err != nil {
				return fmt.Errorf("compress: -o %w", err)
			}
			density, err := floatSetting(v, "compress.density")
			if err != nil {
				return fmt.Errorf("compress: %w", err)
			}
			opts, err := config.CompressConfig{Density: density, Alpha: v.GetString("compress.alpha"), Scope: v.GetString("compress.scope")}.Options(0, "", "")
			if err != nil {
				return fmt.Errorf("compress: %w", err)
			}
			if v.GetBool("compress.refit") {
				r := compress.Refit{Rounds: v.GetInt("compress.refit-rounds")}
				switch init := v.GetString("compress.refit-init"); init {
				case "balanced":
					r.Balanced = true
				case "factors":
				default:
					return fmt.Errorf("compress: --refit-init %q: want balanced or factors", init)
				}
				opts = append(opts, compress.WithRefit(r))
			}
			start := time.Now()
			src, err := loadAdapter(cmd.ErrOrStderr(), args[0], v.GetString("compress.base"))
			if err != nil {
				return fmt.Errorf("compress %s: %w", args[0], err)
			}
			loaded := time.Since(start)
			var h *compress.Header
			var size int64
			err = atomicfile.WriteFunc(out, 0o644, func(f io.Writer) error {
				h, size, err = compress.Encode(f, src, opts...)
				return err
			})
			if err != nil {
				return fmt.Errorf("compress %s: %w", args[0], err)
			}
			s := compress.Summarize(h, size)
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s, %d params, %d kept, %s -> %s (%.1fx smaller, %.3f bits/param, %.4f x bound) in %v (read %v)\n",
				out, h.PeftType, s.Params, s.Kept, human(h.SourceBytes), human(size), s.RatioSource, s.BitsPerParam, s.RatioBound,
				time.Since(start).Round(time.Millisecond), loaded.Round(time.Millisecond))
			if !v.IsSet("compress.alpha") {
				alphaHint(cmd.ErrOrStderr(), h.PeftType)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringP("output", "o", "", "container file to write")
	f.Float64("density", compress.DefaultDensity, "fraction of the task vector kept, in (0, 1]")
	f.String("alpha", "auto", "scale rule: auto (mean |tau| of the kept elements) or a multiplier of std(tau) (the reference uses 1)")
	f.String("scope", compress.ScopeGlobal, "top-k and scale over the whole vector (global) or per tensor (tensor)")
	f.String("base", "", "base model directory: compress the residual of a fully fine-tuned model")
	f.Bool("refit", false, "LoRA only: choose the kept positions, signs and scales for the product B A (same size)")
	f.Int("refit-rounds", compress.DefaultRefit.Rounds, "refit: alternations of refitting A and B")
	f.String("refit-init", "balanced", "refit: start from the balanced SVD factors of B A (balanced) or the stored ones (factors)")
	bindFlags(v, "compress", f)
	return cmd
}
