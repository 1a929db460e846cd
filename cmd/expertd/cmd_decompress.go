package main

import (
	"bufio"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/expertd/expertd/compress"
)

func newDecompressCmd(v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "decompress FILE.cpeft -o OUT_DIR",
		Short: "Write a .cpeft container back as a PEFT adapter directory (or a model with --base)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := v.GetString("decompress.output")
			if out == "" {
				return fmt.Errorf("decompress: -o OUT_DIR is required")
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			start := time.Now()
			p := newProgress(cmd.ErrOrStderr(), "decompress "+args[0])
			h, err := compress.Expand(bufio.NewReaderSize(f, 1<<20), out, compress.ExpandOptions{
				DType:    v.GetString("decompress.dtype"),
				BaseDir:  v.GetString("decompress.base"),
				Progress: p.update,
			})
			p.done()
			if err != nil {
				return fmt.Errorf("decompress %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s adapter, %d tensors in %v\n", out, h.PeftType, len(h.Tensors), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringP("output", "o", "", "directory to write")
	f.String("dtype", "source", "dtype of the written tensors: source, f32, f16 or bf16")
	f.String("base", "", "base model directory, for a residual container")
	bindFlags(v, "decompress", f)
	return cmd
}
