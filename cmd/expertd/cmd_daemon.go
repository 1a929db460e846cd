package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/expertd/expertd/node"
)

func newDaemonCmd(v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the expertd node: join the swarm, serve and fetch experts, serve the API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, v)
			if err != nil {
				return err
			}
			log := newLogger(cmd.ErrOrStderr(), cfg.Log.SlogLevel())
			n, err := node.New(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			defer n.Close()
			return n.Serve(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.String("data-dir", "", "data directory (config data_dir)")
	f.StringSlice("listen", nil, "libp2p listen multiaddrs (config p2p.listen)")
	f.StringSlice("bootstrap", nil, "bootstrap peers /ip4/.../p2p/ID (config p2p.bootstrap)")
	_ = v.BindPFlag("data_dir", f.Lookup("data-dir"))
	_ = v.BindPFlag("p2p.listen", f.Lookup("listen"))
	_ = v.BindPFlag("p2p.bootstrap", f.Lookup("bootstrap"))
	return cmd
}
