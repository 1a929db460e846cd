package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// versionInfo says which expertd this is: the module version (a tag when
// built with go install module@version, "(devel)" from a checkout), the
// VCS revision and whether the tree was modified, and the Go version.
func versionInfo() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "expertd (no build information)"
	}
	s := "expertd " + bi.Main.Version
	var rev, modified string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.modified":
			modified = kv.Value
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		s += ", revision " + rev
		if modified == "true" {
			s += " (modified)"
		}
	}
	return s + ", " + bi.GoVersion
}

// newVersionCmd returns `expertd version`; `expertd --version` prints the same.
func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print expertd's version, VCS revision and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionInfo())
			return err
		},
	}
}
