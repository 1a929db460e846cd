package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/expertd/expertd/configs"
)

// EnvPrefix prefixes the environment variable of every key:
// api.listen is EXPERTD_API_LISTEN.
const EnvPrefix = "EXPERTD"

// Load builds the configuration in v and returns it decoded and validated.
//
// It reads the embedded defaults (configs/expertd.yaml), then merges file:
// when file is "", DefaultFile() if that exists; a named file must exist.
// The environment (EXPERTD_*, lists comma-separated) overrides the file,
// and flags that the caller bound with v.BindPFlag before calling Load
// override everything. A file with a key the defaults lack, or with an
// older version that cannot be migrated, is an error; so is every invalid
// value, each named by its key (see KeyError).
func Load(v *viper.Viper, file string) (*Config, error) {
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(configs.Default)); err != nil {
		return nil, fmt.Errorf("config: embedded defaults: %w", err)
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()

	if file == "" {
		if def := DefaultFile(); def != "" {
			if _, err := os.Stat(def); err == nil {
				file = def
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("config %s: %w", def, err)
			}
		}
	}
	if file != "" {
		settings, err := readFile(file)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", file, err)
		}
		if err := v.MergeConfigMap(settings); err != nil {
			return nil, fmt.Errorf("config %s: %w", file, err)
		}
	}

	c := &Config{}
	if err := decode(v, c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.File = file
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// readFile reads a YAML configuration file, checks its keys against the
// defaults and migrates it to CurrentVersion.
func readFile(file string) (map[string]any, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var raw any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		raw = map[string]any{} // an empty file
	}
	settings, ok := normalize(raw).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: the file must be a YAML mapping of keys, not a %T", ErrInvalid, raw)
	}
	if err := migrate(settings); err != nil {
		return nil, err
	}
	s, err := defaultSchema()
	if err != nil {
		return nil, err
	}
	if err := s.check(settings); err != nil {
		return nil, err
	}
	return settings, nil
}
