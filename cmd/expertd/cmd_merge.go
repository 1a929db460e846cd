package main

import (
	"cmp"
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
	"github.com/expertd/expertd/internal/atomicfile"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/unixfs"
)

func newMergeCmd(v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "merge EXPERT EXPERT... [-o OUT.cpeft] [--publish]",
		Short: "Merge experts of one base (.cpeft containers, adapter directories or CIDs) into one",
		Long: `Merge experts of one base model, PEFT type and set of target modules into one expert.

Each EXPERT is a .cpeft container or a PEFT adapter directory, merged here into
OUT.cpeft; or every EXPERT is a CID, and the daemon merges them (POST /v1/merge):
it fetches those it does not hold, stores and pins the result and prints its CID
(write it out with expertd fetch CID -o DIR). LoRA adapters are merged in the space
of the weight update (dW = lora_alpha/r * B A per module) and factored again by
truncated SVD into --rank with lora_alpha = rank; IA3 vectors are merged directly.
The result is compressed into a container (or written as an uncompressed adapter
directory with --uncompressed) whose safetensors metadata records the method and
the parents (names and CIDs) under "` + compress.MergeMetadataKey + `".

--publish publishes the merged expert through the daemon; its signed publication
carries the method and the parents' CIDs, which every peer can verify.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			weights, err := parseWeights(v.GetString("merge.weights"))
			if err != nil {
				return err
			}
			opts := compress.MergeOptions{
				Method:  v.GetString("merge.method"),
				Weights: weights,
				Lambda:  v.GetFloat64("merge.lambda"),
				Trim:    v.GetFloat64("merge.trim"),
				Rank:    v.GetInt("merge.rank"),
			}
			cids, err := mergeCIDs(args)
			if err != nil {
				return fmt.Errorf("merge: %w", err)
			}
			if cids != nil {
				return mergeInDaemon(cmd, v, cids, opts)
			}
			return mergeHere(cmd, v, args, opts)
		},
	}
	f := cmd.Flags()
	f.StringP("output", "o", "", "container to write (a directory with --uncompressed); not with CIDs")
	f.String("method", compress.MergeTA, "ta (task arithmetic) or ties (trim, elect sign, disjoint mean)")
	f.String("weights", "", "comma-separated weight of each expert (default all 1)")
	f.Float64("lambda", 0, fmt.Sprintf("scale of the merged update (default: ta %g, or %g when an input is a container; ties %g)",
		compress.DefaultLambdaTA, compress.DefaultLambdaTACompressed, compress.DefaultLambdaTIES))
	f.Float64("trim", compress.DefaultTIESTrim, "ties: fraction of each expert's update kept before the sign election")
	f.Float64("density", compress.DefaultMergeDensity, "fraction of the merged expert kept by the codec, in (0, 1]")
	f.Int("rank", 0, "rank of a merged LoRA (default: the sum of the experts' ranks)")
	f.Bool("refit", compress.DefaultMergeRefit, "compress a merged LoRA with the product-aware refit (see compress --refit)")
	f.Bool("uncompressed", false, "write the merged expert as an uncompressed adapter directory")
	f.Bool("publish", false, "publish the merged expert through the daemon, its provenance signed")
	f.String("name", "", "name of the published or stored expert (default: OUT's file name, or the parents' names joined by +)")
	bindFlags(v, "merge", f)
	return cmd
}

// mergeCIDs returns the CIDs args name, nil when they name files; args
// mixing both are refused. An argument is a file if it exists.
func mergeCIDs(args []string) ([]string, error) {
	var cids, files []string
	for _, a := range args {
		if _, err := os.Stat(a); err == nil {
			files = append(files, a)
		} else if _, cerr := api.ParseCID(a); cerr == nil {
			cids = append(cids, a)
		} else {
			return nil, fmt.Errorf("%s: %w (and not a CID)", a, withoutPath(err))
		}
	}
	if len(cids) > 0 && len(files) > 0 {
		return nil, fmt.Errorf("%s is a file and %s a CID: give files, merged here, or CIDs, merged by the daemon (publish the files first)", files[0], cids[0])
	}
	return cids, nil
}

// mergeInDaemon asks the daemon to merge the experts cids.
func mergeInDaemon(cmd *cobra.Command, v *viper.Viper, cids []string, opts compress.MergeOptions) error {
	if v.GetString("merge.output") != "" || v.GetBool("merge.uncompressed") {
		return fmt.Errorf("merge: the daemon merges CIDs and stores the result: drop -o and --uncompressed, and write it out with expertd fetch CID -o DIR")
	}
	c, err := client(cmd, v)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	refit := v.GetBool("merge.refit")
	start := time.Now()
	e, err := c.Merge(cmd.Context(), api.MergeRequest{
		Parents: cids, Method: opts.Method, Weights: opts.Weights, Lambda: opts.Lambda, Trim: opts.Trim, Rank: opts.Rank,
		Density: v.GetFloat64("merge.density"), Refit: &refit, Name: v.GetString("merge.name"), Publish: v.GetBool("merge.publish"),
	})
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	what := "stored and pinned"
	if e.Signed {
		what = "published"
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s of %d experts, %s, %s, %s in %v\n", e.Name, cmp.Or(opts.Method, compress.MergeTA), len(cids), e.PeftType, human(e.Size), what, time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(cmd.OutOrStdout(), e.CID)
	return nil
}

// mergeHere merges the files args into -o, and publishes it with
// --publish.
func mergeHere(cmd *cobra.Command, v *viper.Viper, args []string, opts compress.MergeOptions) error {
	out := v.GetString("merge.output")
	if out == "" {
		return fmt.Errorf("merge: -o OUT is required")
	}
	publish := v.GetBool("merge.publish")
	var c *api.Client
	if publish { // before the work, whether the daemon is there
		if v.GetBool("merge.uncompressed") {
			return fmt.Errorf("merge: --publish publishes a container: drop --uncompressed")
		}
		var err error
		if c, err = client(cmd, v); err == nil {
			err = c.Health(cmd.Context())
		}
		if err != nil {
			return fmt.Errorf("merge: --publish: %w", err)
		}
	}
	start := time.Now()
	in := make([]compress.MergeInput, len(args))
	for i, a := range args {
		var err error
		if in[i], err = readMergeInput(a); err != nil {
			return fmt.Errorf("merge: %s: %w", a, err)
		}
	}
	merged, prov, err := compress.Merge(cmd.Context(), in, opts)
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
	copts := []compress.Option{compress.WithDensity(v.GetFloat64("merge.density"))}
	if v.GetBool("merge.refit") && merged.PeftType == compress.PeftTypeLoRA {
		copts = append(copts, compress.WithRefit(compress.DefaultRefit))
	}
	var size int64
	err = atomicfile.WriteFunc(out, 0o644, func(f io.Writer) error {
		_, size, err = compress.Encode(f, merged, copts...)
		return err
	})
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s, density %g, %s in %v\n", out, what, v.GetFloat64("merge.density"), human(size), time.Since(start).Round(time.Millisecond))
	if !publish {
		return nil
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	name := cmp.Or(v.GetString("merge.name"), strings.TrimSuffix(filepath.Base(out), ".cpeft"))
	e, err := c.Publish(cmd.Context(), api.PublishRequest{Path: abs, Name: name})
	if err != nil {
		return fmt.Errorf("merge: publish %s: %w", out, err)
	}
	fmt.Fprintln(cmd.OutOrStdout(), e.CID)
	return nil
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
