package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/config"
)

// The commands in this file talk to a running daemon through its API.

func newPublishCmd(v *viper.Viper) *cobra.Command {
	var req api.PublishRequest
	cmd := &cobra.Command{
		Use:   "publish DIR|FILE.cpeft",
		Short: "Compress (if a directory) and publish an expert; prints its CID",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd, v)
			if err != nil {
				return err
			}
			c := api.NewClient(cfg.API.Listen, cfg.API.Token)
			if req.Path, err = filepath.Abs(args[0]); err != nil {
				return err
			}
			if req.Name == "" {
				req.Name = filepath.Base(req.Path)
			}
			if st, err := os.Stat(req.Path); err == nil && st.IsDir() {
				// Compress here, with progress, and hand the daemon the container.
				file, err := compressForPublish(cmd, req, cfg.Compress)
				if err != nil {
					return fmt.Errorf("publish %s: %w", args[0], err)
				}
				defer os.Remove(file)
				req.Path, req.Base = file, ""
			}
			e, err := c.Publish(cmd.Context(), req)
			if err != nil {
				return fmt.Errorf("publish %s: %w", args[0], err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), e.CID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "name of the expert (default: the directory's name)")
	f.Float64Var(&req.Density, "density", 0, "fraction kept (default: compress.density)")
	f.StringVar(&req.Alpha, "alpha", "", "auto or a multiplier of std (default: compress.alpha)")
	f.StringVar(&req.Scope, "scope", "", "global or tensor (default: compress.scope)")
	f.StringVar(&req.Base, "base", "", "base model directory, for a full fine-tune")
	return cmd
}

// compressForPublish compresses an adapter directory into a temporary
// container, showing progress, with the request's options over the
// configured defaults.
func compressForPublish(cmd *cobra.Command, req api.PublishRequest, def config.CompressConfig) (string, error) {
	opts, err := def.Options(req.Density, req.Alpha, req.Scope)
	if err != nil {
		return "", err
	}
	size := dirWeightsSize(req.Path)
	bar := newBar(cmd.ErrOrStderr(), "publish "+req.Name+": read")
	src, err := compress.LoadProgress(req.Path, req.Base, func(done, total int64) {
		bar.update(uint64(done*size/max(total, 1)), uint64(size))
	})
	if err != nil {
		return "", err
	}
	bar.finish(uint64(size), uint64(size))
	f, err := os.CreateTemp("", "expertd-publish-*.cpeft")
	if err != nil {
		return "", err
	}
	if err := f.Chmod(0o644); err != nil { // the daemon may run as another user
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	_, _, err = compress.Encode(f, src, opts...)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// dirWeightsSize is the size of the safetensors files in dir.
func dirWeightsSize(dir string) int64 {
	var n int64
	matches, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil {
			n += st.Size()
		}
	}
	return n
}

func newFetchCmd(v *viper.Viper) *cobra.Command {
	var out, dtype string
	var force bool
	cmd := &cobra.Command{
		Use:   "fetch CID [-o DIR]",
		Short: "Fetch an expert from the swarm, verify it and (with -o) write it as a PEFT directory",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client(cmd, v)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var abs string
			if out != "" {
				// The daemon checks again where it writes; checking here
				// first saves a download that could not be written.
				if abs, err = filepath.Abs(out); err != nil {
					return err
				}
				if err := checkOutputDir(abs, force); err != nil {
					return fmt.Errorf("fetch %s: %w", args[0], err)
				}
			}
			t, err := c.StartFetch(ctx, args[0])
			if err != nil {
				return fmt.Errorf("fetch %s: %w", args[0], err)
			}
			bar := newBar(cmd.ErrOrStderr(), "fetch "+args[0])
			for t.State == api.StateRunning {
				bar.update(t.Bytes, t.Total)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
				if t, err = c.Transfer(ctx, args[0]); err != nil {
					return err
				}
			}
			bar.finish(t.Bytes, t.Total)
			if t.State == api.StateFailed {
				return fmt.Errorf("fetch %s: %s", args[0], t.Error)
			}
			if out == "" {
				fmt.Fprintln(cmd.OutOrStdout(), args[0])
				return nil
			}
			m, err := c.Materialize(ctx, args[0], api.MaterializeRequest{Dir: abs, DType: dtype, Overwrite: force})
			if err != nil {
				return fmt.Errorf("fetch %s: write %s: %w", args[0], out, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), m.Dir)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the expert as a PEFT adapter directory here (empty or missing, unless --force)")
	cmd.Flags().StringVar(&dtype, "dtype", "source", "dtype of the written tensors: source, f32, f16 or bf16")
	cmd.Flags().BoolVar(&force, "force", false, "write into an output directory that holds files, replacing the adapter's")
	return cmd
}

// checkOutputDir refuses an output directory that holds files, unless force.
func checkOutputDir(dir string, force bool) error {
	if force {
		return nil
	}
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case len(ents) > 0:
		return fmt.Errorf("%w: %s holds %d entries (--force writes into it)", compress.ErrNotEmpty, dir, len(ents))
	}
	return nil
}

func newLsCmd(v *viper.Viper) *cobra.Command {
	var f api.Filter
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List experts held here (and with --remote, known in the swarm)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client(cmd, v)
			if err != nil {
				return err
			}
			es, err := c.Experts(cmd.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd, es)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CID\tNAME\tTYPE\tBASE MODEL\tSIZE\tWHERE")
			for _, e := range es {
				where := "local"
				if e.Pinned {
					where = "local, pinned"
				}
				if !e.Local {
					where = fmt.Sprintf("remote (%d providers)", len(e.Providers))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.CID, e.Name, e.PeftType, e.BaseModel, human(e.Size), where)
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.Remote, "remote", false, "include experts known from the swarm")
	fl.StringVar(&f.BaseModel, "base-model", "", "only experts for this base model")
	fl.StringVar(&f.PeftType, "peft-type", "", "only this peft type (lora, ia3, ...)")
	fl.StringVar(&f.Name, "name", "", "only names containing this")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newPeersCmd(v *viper.Viper) *cobra.Command {
	return &cobra.Command{
		Use:   "peers",
		Short: "List connected peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client(cmd, v)
			if err != nil {
				return err
			}
			ps, err := c.Peers(cmd.Context())
			if err != nil {
				return err
			}
			for _, p := range ps {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%.1f ms\t%v\n", p.ID, p.LatencyMS, p.Addrs)
			}
			return nil
		},
	}
}

func newIDCmd(v *viper.Viper) *cobra.Command {
	return &cobra.Command{
		Use:   "id",
		Short: "Print this node's peer ID and addresses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client(cmd, v)
			if err != nil {
				return err
			}
			id, err := c.Identity(cmd.Context())
			if err != nil {
				return err
			}
			return printJSON(cmd, id)
		},
	}
}

func newPinCmd(v *viper.Viper, pin bool) *cobra.Command {
	use, short := "pin CID", "Keep an expert: never evict it"
	if !pin {
		use, short = "unpin CID", "Let an expert be evicted when the store is over quota"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client(cmd, v)
			if err != nil {
				return err
			}
			return c.Pin(cmd.Context(), args[0], pin)
		},
	}
}

func newRmCmd(v *viper.Viper) *cobra.Command {
	return &cobra.Command{
		Use:   "rm CID",
		Short: "Remove an expert from this node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client(cmd, v)
			if err != nil {
				return err
			}
			return c.Remove(cmd.Context(), args[0])
		},
	}
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
