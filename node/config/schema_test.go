package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/viper"
)

// structKeys lists the keys of Config: the mapstructure tags of its fields,
// nested structs joined with ".".
func structKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for f := range t.Fields() {
		tag := f.Tag.Get("mapstructure")
		if tag == "-" {
			continue
		}
		if tag == "" {
			panic("config: field " + f.Name + " has no mapstructure tag")
		}
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, structKeys(f.Type, prefix+tag+".")...)
			continue
		}
		keys = append(keys, prefix+tag)
	}
	return keys
}

// The embedded YAML documents exactly the keys that Config decodes: adding a
// key to one and not the other fails here.
func TestYAMLAndStructHaveTheSameKeys(t *testing.T) {
	s, err := defaultSchema()
	if err != nil {
		t.Fatal(err)
	}
	var yamlKeys []string
	for k := range s.leaves {
		yamlKeys = append(yamlKeys, k)
	}
	goKeys := structKeys(reflect.TypeFor[Config](), "")
	slices.Sort(yamlKeys)
	slices.Sort(goKeys)
	for _, k := range goKeys {
		if !s.leaves[k] {
			t.Errorf("Config has %s, configs/expertd.yaml does not", k)
		}
	}
	for _, k := range yamlKeys {
		if !slices.Contains(goKeys, k) {
			t.Errorf("configs/expertd.yaml has %s, Config does not", k)
		}
	}
	// viper agrees on the key set.
	v := viper.New()
	isolate(t)
	if _, err := Load(v, ""); err != nil {
		t.Fatal(err)
	}
	if got := v.AllKeys(); !slices.Equal(sorted(got), goKeys) {
		t.Errorf("viper keys %q\nwant %q", sorted(got), goKeys)
	}
}

// Every key in the embedded YAML has a comment saying what it is.
func TestEveryKeyIsCommented(t *testing.T) {
	s, err := defaultSchema()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(defaultYAML()), "\n")
	seen := 0
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "- ") {
			continue
		}
		name, _, ok := strings.Cut(trimmed, ":")
		if !ok {
			continue
		}
		isLeaf := false
		for k := range s.leaves {
			if k == name || strings.HasSuffix(k, "."+name) {
				isLeaf = true
			}
		}
		if !isLeaf {
			continue // a section
		}
		seen++
		if i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
			t.Errorf("configs/expertd.yaml line %d (%s) has no comment above it", i+1, trimmed)
		}
	}
	if seen != len(s.leaves) {
		t.Errorf("checked %d keys, the schema has %d", seen, len(s.leaves))
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
