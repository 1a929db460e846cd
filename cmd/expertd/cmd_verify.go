package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/expertd/expertd/node"
	"github.com/expertd/expertd/node/store"
)

// newVerifyCmd returns `expertd verify [--data-dir DIR]`, which re-hashes
// every stored block, removes the corrupt ones, checks that every indexed
// expert is complete, prints a summary and fails if anything was wrong.
func newVerifyCmd() *cobra.Command {
	def, _ := store.DefaultDir()
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every stored block against its CID and every stored expert for completeness",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("verify: no data directory: give --data-dir")
			}
			// The daemon keeps its store in <data dir>/store; a store
			// directory itself is accepted too.
			if st, err := os.Stat(filepath.Join(dir, node.StoreDir)); err == nil && st.IsDir() {
				dir = filepath.Join(dir, node.StoreDir)
			}
			if _, err := os.Stat(dir); err != nil {
				return fmt.Errorf("verify: no store at %s: %w", dir, err)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			s, err := store.Open(dir, store.Options{Logger: log})
			if errors.Is(err, store.ErrLocked) {
				return fmt.Errorf("verify: %w (stop the daemon first)", err)
			}
			if err != nil {
				return fmt.Errorf("verify: %w", err)
			}
			defer s.Close()
			r, err := s.Verify(cmd.Context())
			if err != nil {
				return fmt.Errorf("verify: %w", err)
			}
			if asJSON {
				err = printJSON(cmd, struct {
					DataDir string `json:"data_dir"`
					OK      bool   `json:"ok"`
					store.Report
				}{dir, r.OK(), r})
			} else {
				printVerifyReport(cmd.OutOrStdout(), dir, r)
			}
			if err != nil {
				return err
			}
			if !r.OK() {
				return fmt.Errorf("verify: %d corrupt blocks, %d incomplete experts, %d stray files",
					len(r.Corrupt), len(r.Incomplete), len(r.Stray))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON (it fails all the same if anything was wrong)")
	cmd.Flags().StringVar(&dir, "data-dir", def, "data directory ($XDG_DATA_HOME/expertd or ~/.local/share/expertd)")
	return cmd
}

func printVerifyReport(w io.Writer, dir string, r store.Report) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("data dir", "%s", dir)
	row("blocks", "%d good, %s", r.Blocks, human(r.Bytes))
	row("corrupt blocks", "%d (removed)", len(r.Corrupt))
	row("orphan blocks", "%d, %s (unfinished fetches)", r.Orphans, human(r.OrphanBytes))
	row("experts", "%d indexed, %d incomplete", r.Experts, len(r.Incomplete))
	if len(r.Stray) > 0 {
		row("stray files", "%d (left alone)", len(r.Stray))
	}
	if len(r.SetAside) > 0 {
		row("set-aside entries", "%d (*.corrupt, no longer indexed)", len(r.SetAside))
	}
	tw.Flush()
	for _, c := range r.Corrupt {
		fmt.Fprintf(w, "corrupt block %s: removed\n", c)
	}
	for _, p := range r.Incomplete {
		name := ""
		if p.Name != "" {
			name = " (" + p.Name + ")"
		}
		if p.Err != "" {
			fmt.Fprintf(w, "incomplete expert %s%s: %s\n", p.CID, name, p.Err)
		} else {
			fmt.Fprintf(w, "incomplete expert %s%s: %d block(s) missing, %s first\n", p.CID, name, len(p.Missing), p.Missing[0])
		}
	}
	for _, f := range r.Stray {
		fmt.Fprintf(w, "stray file %s\n", f)
	}
	for _, f := range r.SetAside {
		fmt.Fprintf(w, "set-aside entry %s\n", f)
	}
}
