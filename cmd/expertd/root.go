package main

import (
	"context"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// run builds the command tree and executes it with args.
func run(ctx context.Context, args []string) error {
	root := newRootCmd(viper.New())
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRootCmd(v *viper.Viper) *cobra.Command {
	root := &cobra.Command{
		Use:           "expertd",
		Short:         "Compress PEFT experts with ComPEFT and share them peer to peer",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	return root
}
