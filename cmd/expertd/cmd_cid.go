package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/expertd/expertd/node/unixfs"
)

// newCidCmd returns `expertd cid FILE`, which prints the content ID of FILE:
// the CID `ipfs add --cid-version=1 --raw-leaves --chunker=size-1048576`
// gives it.
func newCidCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cid FILE",
		Short: "Print the content ID of a file, as kubo's ipfs add with raw leaves and 1 MiB chunks",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := openInput(args[0])
			if err != nil {
				return fmt.Errorf("cid %s: %w", args[0], err)
			}
			f.Close()
			c, err := unixfs.FileCID(args[0])
			if err != nil {
				return fmt.Errorf("cid %s: %w", args[0], withoutPath(err))
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), c)
			return err
		},
	}
}
