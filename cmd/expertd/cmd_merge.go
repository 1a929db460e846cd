package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/node/unixfs"
)

func newMergeCmd(v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "merge EXPERT EXPERT... -o OUT.cpeft",
		Short: "Merge experts of one base (.cpeft containers or adapter directories) into one",
		Long: `Merge experts of one base model, PEFT type and set of target modules into one expert.

Each EXPERT is a .cpeft container or a PEFT adapter directory. LoRA adapters are
merged in the space of the weight update (dW = lora_alpha/r * B A per module) and
factored again by truncated SVD into --rank with lora_alpha = rank; IA3 vectors are
merged directly. The result is compressed into a container (or written as an
uncompressed adapter directory with --uncompressed) whose safetensors metadata
records the method and the parents (names and CIDs) under "` + compress.MergeMetadataKey + `".`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := v.GetString("merge.output")
			if out == "" {
				return fmt.Errorf("merge: -o OUT is required")
			}
			weights, err := parseWeights(v.GetString("merge.weights"))
			if err != nil {
				return err
			}
			start := time.Now()
			in := make([]compress.MergeInput, len(args))
			for i, a := range args {
				if in[i], err = readMergeInput(a); err != nil {
					return fmt.Errorf("merge: %s: %w", a, err)
				}
			}
			merged, prov, err := compress.Merge(cmd.Context(), in, compress.MergeOptions{
				Method:  v.GetString("merge.method"),
				Weights: weights,
				Lambda:  v.GetFloat64("merge.lambda"),
				Trim:    v.GetFloat64("merge.trim"),
				Rank:    v.GetInt("merge.rank"),
			})
			if err != nil {
				return fmt.Errorf("merge: %w", err)
			}
			what := fmt.Sprintf("%s of %d %s experts, lambda %g", prov.Method, len(in), merged.PeftType, prov.Lambda)
			if prov.Rank > 0 {
				what += fmt.Sprintf(", rank %d", prov.Rank)
			}
			if v.GetBool("merge.uncompressed") {
				if err := compress.WriteDir(merged, out, "F32"); err != nil {
					return fmt.Errorf("merge: %w", err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s, uncompressed, in %v\n", out, what, time.Since(start).Round(time.Millisecond))
				return nil
			}
			opts := []compress.Option{compress.WithDensity(v.GetFloat64("merge.density"))}
			if v.GetBool("merge.refit") && merged.PeftType == compress.PeftTypeLoRA {
				opts = append(opts, compress.WithRefit(compress.DefaultRefit))
			}
			var size int64
			err = compress.WriteFileAtomic(out, func(f io.Writer) error {
				_, size, err = compress.Encode(f, merged, opts...)
				return err
			})
			if err != nil {
				return fmt.Errorf("merge: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s, density %g, %s in %v\n", out, what, v.GetFloat64("merge.density"), human(size), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringP("output", "o", "", "container to write (a directory with --uncompressed)")
	f.String("method", compress.MergeTA, "ta (task arithmetic) or ties (trim, elect sign, disjoint mean)")
	f.String("weights", "", "comma-separated weight of each expert (default all 1)")
	f.Float64("lambda", 0, fmt.Sprintf("scale of the merged update (default: ta %g, or %g when an input is a container; ties %g)",
		compress.DefaultLambdaTA, compress.DefaultLambdaTACompressed, compress.DefaultLambdaTIES))
	f.Float64("trim", compress.DefaultTIESTrim, "ties: fraction of each expert's update kept before the sign election")
	f.Float64("density", compress.DefaultMergeDensity, "fraction of the merged expert kept by the codec, in (0, 1]")
	f.Int("rank", 0, "rank of a merged LoRA (default: the sum of the experts' ranks)")
	f.Bool("refit", compress.DefaultMergeRefit, "compress a merged LoRA with the product-aware refit (see compress --refit)")
	f.Bool("uncompressed", false, "write the merged expert as an uncompressed adapter directory")
	bindFlags(v, "merge", f)
	return cmd
}

// readMergeInput reads one expert: an adapter directory, or a container
// (its CID computed as `expertd cid` does, for the provenance).
func readMergeInput(path string) (compress.MergeInput, error) {
	in := compress.MergeInput{Name: filepath.Base(filepath.Clean(path))}
	st, err := os.Stat(path)
	if err != nil {
		return in, err
	}
	if st.IsDir() {
		in.Source, err = compress.Load(path, "")
		return in, err
	}
	c, err := unixfs.FileCID(path)
	if err != nil {
		return in, err
	}
	in.CID = c.String()
	f, err := os.Open(path)
	if err != nil {
		return in, err
	}
	defer f.Close()
	in.Source, err = compress.ReadSource(f)
	return in, err
}

func parseWeights(s string) ([]float64, error) {
	if s == "" {
		return nil, nil
	}
	var ws []float64
	for _, p := range strings.Split(s, ",") {
		w, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, fmt.Errorf("merge: --weights %q: %q is not a number", s, p)
		}
		ws = append(ws, w)
	}
	return ws, nil
}
