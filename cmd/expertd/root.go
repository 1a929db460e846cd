package main

import (
	"context"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// run builds the command tree and executes it with args.
func run(ctx context.Context, args []string) error {
	root := newRootCmd(newViper())
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// newViper returns the configuration: flags > EXPERTD_* environment > defaults.
func newViper() *viper.Viper {
	v := viper.New()
	v.SetEnvPrefix("EXPERTD")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	return v
}

func newRootCmd(v *viper.Viper) *cobra.Command {
	root := &cobra.Command{
		Use:           "expertd",
		Short:         "Compress PEFT experts with ComPEFT and share them peer to peer",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	daemonCmds := []*cobra.Command{
		newDaemonCmd(v),
		newPublishCmd(v),
		newFetchCmd(v),
		newLsCmd(v),
		newPeersCmd(v),
		newIDCmd(v),
		newPinCmd(v, true),
		newPinCmd(v, false),
		newRmCmd(v),
	}
	for _, c := range daemonCmds {
		addConfigFlags(c)
	}
	root.AddCommand(daemonCmds...)
	root.AddCommand(
		newCompressCmd(v),
		newMergeCmd(v),
		newDecompressCmd(v),
		newInspectCmd(),
		newCidCmd(),
		newVerifyCmd(),
	)
	return root
}

// bindFlags binds each flag of fs to the key prefix.flag-name in v, so the
// environment (EXPERTD_PREFIX_FLAG_NAME) can supply what the flag does not.
func bindFlags(v *viper.Viper, prefix string, fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		_ = v.BindPFlag(prefix+"."+f.Name, f)
	})
}
