package main

import (
	"bufio"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/node/config"
)

// decompressMemoryLimit is the Go heap a decompress aims to stay under
// (runtime/debug.SetMemoryLimit: a soft limit, exceeded rather than failing).
const decompressMemoryLimit = 48 << 20

func newDecompressCmd(v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "decompress FILE.cpeft -o OUT_DIR",
		Short: "Write a .cpeft container back as a PEFT adapter directory (or a model with --base)",
		Long: `Write a .cpeft container back as a PEFT adapter directory (or a model with --base).

OUT_DIR must be empty or missing (--force writes into a directory that holds
files, replacing the adapter's). What the container declares it expands to is
checked against --max-output and the free space of OUT_DIR's filesystem before
anything is written; a failed decompress removes the OUT_DIR it created.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := v.GetString("decompress.output")
			if out == "" {
				return fmt.Errorf("decompress: -o OUT_DIR is required")
			}
			limit, err := config.ParseSize(v.GetString("decompress.max-output"))
			if err != nil {
				return fmt.Errorf("decompress: --max-output: %w", err)
			}
			f, err := openInput(args[0])
			if err != nil {
				return fmt.Errorf("decompress %s: %w", args[0], err)
			}
			defer f.Close()
			// What decompress holds is its header (up to tens of MB for
			// the largest) and bounded chunk buffers; a soft limit keeps the
			// collector from letting garbage double it.
			debug.SetMemoryLimit(decompressMemoryLimit)
			start := time.Now()
			m := newMeter(cmd.ErrOrStderr(), "decompress", args[0])
			h, err := compress.Expand(bufio.NewReaderSize(f, 1<<20), out, compress.ExpandOptions{
				DType:     v.GetString("decompress.dtype"),
				BaseDir:   v.GetString("decompress.base"),
				Progress:  m.Set,
				MaxOutput: config.StoreConfig{MaxOutputSize: limit}.OutputLimit(),
				Overwrite: v.GetBool("decompress.force"),
			})
			if err != nil {
				m.Fail("failed")
			} else {
				m.Done()
			}
			switch {
			case errors.Is(err, compress.ErrOutputLimit):
				return fmt.Errorf("decompress %s: %w (raise it with --max-output, 0 for none)", args[0], err)
			case errors.Is(err, compress.ErrNotEmpty):
				return fmt.Errorf("decompress %s: %w (--force writes into it)", args[0], err)
			case err != nil:
				return fmt.Errorf("decompress %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s adapter, %d tensors in %v\n", out, h.PeftType, len(h.Tensors), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringP("output", "o", "", "directory to write (empty or missing, unless --force)")
	f.String("dtype", "source", "dtype of the written tensors: source, f32, f16 or bf16")
	f.String("base", "", "base model directory, for a residual container")
	f.Bool("force", false, "write into an output directory that holds files, replacing the adapter's")
	f.String("max-output", fmt.Sprintf("%dGiB", compress.DefaultMaxOutput>>30), "most bytes the container may expand to (like store.max_output_size); 0: no limit")
	bindFlags(v, "decompress", f)
	return cmd
}
