package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/expertd/expertd/compress"
)

func newInspectCmd() *cobra.Command {
	var asJSON, tensors bool
	cmd := &cobra.Command{
		Use:   "inspect FILE.cpeft",
		Short: "Describe a .cpeft container and verify its checksums",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := openInput(args[0])
			if err != nil {
				return fmt.Errorf("inspect %s: %w", args[0], err)
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			h, err := compress.Verify(f)
			if err != nil {
				return fmt.Errorf("inspect %s: %w", args[0], err)
			}
			s := compress.Summarize(h, st.Size())
			out := cmd.OutOrStdout()
			if asJSON {
				v := inspected{File: args[0], Checksums: "ok", Summary: s}
				if tensors {
					v.Tensors = h.Tensors
				}
				return printJSON(cmd, v)
			}
			printSummary(out, args[0], s)
			if tensors {
				tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "tensor\tdtype\tshape\tkept\tscale\tbytes")
				for _, t := range h.Tensors {
					fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%.6g\t%d\n", t.Name, t.DType, t.Shape, t.Kept, t.Scale, t.Bytes)
				}
				tw.Flush()
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&tensors, "tensors", false, "list every tensor")
	return cmd
}

// inspected is what inspect --json prints.
type inspected struct {
	File string `json:"file"`
	// Checksums is "ok": inspect fails unless the header's and every
	// tensor's checksum match.
	Checksums string `json:"checksums"`
	compress.Summary
	Tensors []compress.TensorHeader `json:"tensor_list,omitempty"`
}

func printSummary(w io.Writer, name string, s compress.Summary) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("file", "%s", name)
	row("checksums", "ok (the header and all %d tensors)", s.Tensors)
	row("peft type", "%s", s.PeftType)
	row("tensors", "%d", s.Tensors)
	row("params", "%d", s.Params)
	row("kept", "%d (%.4f of params; density %g)", s.Kept, s.KeptFraction, s.Density)
	row("alpha / scope", "%s / %s", s.Alpha, s.Scope)
	if s.Scope == compress.ScopeGlobal {
		row("scale", "%.6g", s.Scale)
	} else {
		row("scales", "%.6g .. %.6g", s.ScaleMin, s.ScaleMax)
	}
	row("bytes", "%d (payload %d, header %d)", s.FileBytes, s.PayloadBytes, s.HeaderBytes)
	row("bits/param", "%.4f", s.BitsPerParam)
	if s.SourceBytes > 0 {
		row("ratio vs source", "%.2fx (%d bytes)", s.RatioSource, s.SourceBytes)
	}
	row("ratio vs fp16", "%.2fx", s.RatioFP16)
	row("entropy bound", "%.0f bytes; payload is %.4f x bound", s.BoundBytes, s.RatioBound)
	if s.Base != "" {
		row("base", "%s", s.Base)
	}
	tw.Flush()
}
