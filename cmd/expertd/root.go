package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
		Version:       versionInfo(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
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
	merge := newMergeCmd(v) // offline, but the daemon merges CIDs and publishes
	addConfigFlags(merge)
	root.AddCommand(
		newCompressCmd(v),
		merge,
		newDecompressCmd(v),
		newInspectCmd(),
		newCidCmd(),
		newVerifyCmd(),
		newVersionCmd(),
	)
	root.SetFlagErrorFunc(withUsage)
	for _, c := range root.Commands() {
		if args := c.Args; args != nil {
			c.Args = func(c *cobra.Command, a []string) error {
				if err := args(c, a); err != nil {
					return withUsage(c, err)
				}
				return nil
			}
		}
	}
	return root
}

// withUsage adds the command's usage line to an error in its flags or
// arguments (usage is silenced for every other error).
func withUsage(c *cobra.Command, err error) error {
	var bad *pflag.InvalidValueError
	var num *strconv.NumError
	if errors.As(err, &bad) && errors.As(err, &num) {
		err = fmt.Errorf("--%s %s: not a number", bad.GetFlag().Name, bad.GetValue())
	}
	path := c.CommandPath()
	if c.HasParent() { // main says "expertd: " already
		err = fmt.Errorf("%s: %w", strings.TrimPrefix(path, c.Root().Name()+" "), err)
	}
	use := c.UseLine()
	if c.HasAvailableSubCommands() {
		use = path + " COMMAND [flags]"
	}
	return fmt.Errorf("%w\nusage: %s\n(%s --help says more)", err, use, path)
}

// bindFlags binds each flag of fs to the key prefix.flag-name in v, so the
// environment (EXPERTD_PREFIX_FLAG_NAME) can supply what the flag does not.
func bindFlags(v *viper.Viper, prefix string, fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		_ = v.BindPFlag(prefix+"."+f.Name, f)
	})
}
