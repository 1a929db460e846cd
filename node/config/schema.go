package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/expertd/expertd/configs"
)

// schema is the set of keys in the embedded defaults: leaves hold values,
// sections hold other keys.
type schema struct {
	leaves   map[string]bool
	sections map[string]bool
}

var defaultSchema = sync.OnceValues(func() (*schema, error) {
	var m map[string]any
	if err := yaml.Unmarshal(defaultYAML(), &m); err != nil {
		return nil, fmt.Errorf("embedded defaults: %w", err)
	}
	s := &schema{leaves: map[string]bool{}, sections: map[string]bool{}}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			key := prefix + k
			if sub, ok := v.(map[string]any); ok {
				s.sections[key] = true
				walk(key+".", sub)
				continue
			}
			s.leaves[key] = true
		}
	}
	walk("", m)
	return s, nil
})

// defaultYAML is the embedded configs/expertd.yaml.
func defaultYAML() []byte { return configs.Default }

// check drops the empty sections of a file's (normalized) settings and
// reports each key that the defaults do not have or that has the wrong shape.
func (s *schema) check(settings map[string]any) error {
	var errs []error
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := m[k]
			key := prefix + k
			switch {
			case s.sections[key]:
				switch sub := v.(type) {
				case nil:
					delete(m, k) // "api:" with nothing under it
				case map[string]any:
					walk(key+".", sub)
				default:
					errs = append(errs, keyErr(key, "must be a section of keys (%s.*), not a value", key))
				}
			case s.leaves[key]:
				if _, ok := v.(map[string]any); ok {
					errs = append(errs, keyErr(key, "must be a value, not a section of keys"))
				}
			default:
				errs = append(errs, keyErr(key, "unknown key"))
			}
		}
	}
	walk("", settings)
	return errors.Join(errs...)
}

// normalize returns v with every mapping's keys lower-cased strings, as
// viper (whose keys are case-insensitive) sees them.
func normalize(v any) any {
	switch m := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(m))
		for k, x := range m {
			out[strings.ToLower(k)] = normalize(x)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, x := range m {
			out[strings.ToLower(fmt.Sprint(k))] = normalize(x)
		}
		return out
	}
	return v
}
