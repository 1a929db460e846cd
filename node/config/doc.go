// Package config loads expertd's configuration: the defaults embedded from
// configs/expertd.yaml, a YAML file, EXPERTD_* environment variables and
// command-line flags, in rising precedence, through spf13/viper.
//
// Load returns a typed, validated Config. A file names its format version;
// older versions are migrated (migrations.go), newer ones are refused. Every
// error names the key it is about, as "p2p.listen[1]: invalid multiaddr ...".
package config
