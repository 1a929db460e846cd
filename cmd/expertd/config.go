package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/config"
)

// addConfigFlags adds the flags every daemon-facing command shares and binds
// them to their config keys.
func addConfigFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.String("config", "", "config file (default $XDG_CONFIG_HOME/expertd/expertd.yaml if it exists)")
	f.String("api", "", "API address host:port (config api.listen)")
}

// loadConfig reads the configuration: flags > EXPERTD_* > file > defaults.
func loadConfig(cmd *cobra.Command, v *viper.Viper) (*config.Config, error) {
	file, _ := cmd.Flags().GetString("config")
	if f := cmd.Flags().Lookup("api"); f != nil && f.Changed {
		v.Set("api.listen", f.Value.String())
	}
	return config.Load(v, file)
}

// client returns an API client for the configured daemon.
func client(cmd *cobra.Command, v *viper.Viper) (*api.Client, error) {
	cfg, err := loadConfig(cmd, v)
	if err != nil {
		return nil, err
	}
	return api.NewClient(cfg.API.Listen, cfg.API.Token), nil
}
