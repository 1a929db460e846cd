package configs

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite docs/config.md from expertd.yaml")

// docFile is the configuration reference, made from expertd.yaml: every
// key, its default and its comment, so the reference cannot drift from the
// file the daemon embeds.
const docFile = "../docs/config.md"

// TestConfigReference checks docs/config.md against expertd.yaml
// (go test ./configs -run TestConfigReference -update rewrites it).
func TestConfigReference(t *testing.T) {
	got, err := reference(Default)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(docFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(docFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with expertd.yaml: run go test ./configs -run TestConfigReference -update", docFile)
	}
}

// reference renders the configuration reference of the YAML file src.
func reference(src []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("expertd.yaml is not a mapping")
	}
	var b bytes.Buffer
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("Made from [configs/expertd.yaml](../configs/expertd.yaml), which the daemon embeds as its defaults, by\n")
	b.WriteString("`go test ./configs -run TestConfigReference -update`; the test fails when the two differ.\n\n")
	b.WriteString(comment(doc.HeadComment + "\n" + doc.Content[0].HeadComment))
	b.WriteString("\n\n| key | default | what it does |\n|---|---|---|\n")
	var walk func(prefix string, m *yaml.Node) error
	walk = func(prefix string, m *yaml.Node) error {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			key := prefix + k.Value
			if v.Kind == yaml.MappingNode {
				if err := walk(key+".", v); err != nil {
					return err
				}
				continue
			}
			what := comment(k.HeadComment)
			if what == "" {
				return fmt.Errorf("%s has no comment", key)
			}
			what = strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(what)
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", key, value(v), what)
		}
		return nil
	}
	if err := walk("", doc.Content[0]); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// comment joins the lines of a YAML comment into one paragraph.
func comment(c string) string {
	var words []string
	for _, l := range strings.Split(c, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#"))
		if l != "" {
			words = append(words, l)
		}
	}
	return strings.Join(words, " ")
}

// value renders a default: a scalar as written, a list as its items.
func value(v *yaml.Node) string {
	switch v.Kind {
	case yaml.SequenceNode:
		if len(v.Content) == 0 {
			return "`[]`"
		}
		var items []string
		for _, it := range v.Content {
			items = append(items, "`"+it.Value+"`")
		}
		return strings.Join(items, "<br>")
	case yaml.ScalarNode:
		if v.Value == "" {
			return `""`
		}
		return "`" + v.Value + "`"
	}
	return "?"
}
