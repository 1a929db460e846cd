package handoff

import (
	"strconv"
	"strings"
	"testing"

	"github.com/expertd/expertd/compress"
)

// loraHeader returns the header of a LoRA container whose
// adapter_config.json is the fixture's minimal fields plus extra (JSON
// members, "" for none), with rank-r tensors of one module.
func loraHeader(base string, r int64, extra string) *compress.Header {
	cfg := `{"peft_type": "LORA", "r": ` + strconv.FormatInt(r, 10) + `, "lora_alpha": 32, "target_modules": ["qkv"], "bias": "none"`
	if base != "" {
		cfg += `, "base_model_name_or_path": "` + base + `"`
	}
	if extra != "" {
		cfg += ", " + extra
	}
	cfg += "}"
	return &compress.Header{PeftType: "LORA", ConfigName: "adapter_config.json", Config: cfg, Tensors: []compress.TensorHeader{
		{Name: "base_model.model.blocks.0.attn.qkv.lora_A.weight", Shape: []int64{r, 384}},
		{Name: "base_model.model.blocks.0.attn.qkv.lora_B.weight", Shape: []int64{1152, r}},
	}}
}

func TestCheckHeader(t *testing.T) {
	p := Policy{ServedModel: "gpt2-tiny", BaseAliases: []string{"org/gpt2-tiny"}}
	with := func(f func(*compress.Header)) *compress.Header {
		h := loraHeader("gpt2-tiny", 16, "")
		f(h)
		return h
	}
	for _, c := range []struct {
		name   string
		p      Policy
		h      *compress.Header
		reason string // "" passes
		fill   string
	}{
		{"loadable", p, loraHeader("gpt2-tiny", 16, ""), "", ""},
		{"alias written as the served model", p, loraHeader("org/gpt2-tiny", 8, ""), "", "gpt2-tiny"},
		{"other base", p, loraHeader("llama", 8, ""), ReasonOtherBase, ""},
		{"other base, case differs", p, loraHeader("GPT2-tiny", 8, ""), ReasonOtherBase, ""},
		{"no base", p, loraHeader("", 8, ""), ReasonUnknownBase, ""},
		{"no base accepted", Policy{ServedModel: "gpt2-tiny", AcceptUnknownBase: true}, loraHeader("", 8, ""), "", "gpt2-tiny"},
		{"no served model: any base", Policy{}, loraHeader("llama", 8, ""), "", ""},
		{"rank over the default 16", p, loraHeader("gpt2-tiny", 32, ""), ReasonRank, ""},
		{"rank within a raised limit", Policy{ServedModel: "gpt2-tiny", MaxLoRARank: 64}, loraHeader("gpt2-tiny", 32, ""), "", ""},
		{"rank_pattern over the limit", p, loraHeader("gpt2-tiny", 8, `"rank_pattern": {"qkv": 64}`), ReasonRank, ""},
		{"tensor rank over the limit", p, with(func(h *compress.Header) { h.Tensors[0].Shape = []int64{32, 384} }), ReasonRank, ""},
		{"r zero", p, loraHeader("gpt2-tiny", 0, ""), ReasonConfig, ""},
		{"r missing", p, with(func(h *compress.Header) {
			h.Config = `{"peft_type":"LORA","lora_alpha":8,"target_modules":["q"],"base_model_name_or_path":"gpt2-tiny"}`
		}), ReasonConfig, ""},
		{"target_modules missing", p, with(func(h *compress.Header) {
			h.Config = `{"peft_type":"LORA","r":8,"lora_alpha":8,"base_model_name_or_path":"gpt2-tiny"}`
		}), ReasonConfig, ""},
		{"lora_alpha missing", p, with(func(h *compress.Header) {
			h.Config = `{"peft_type":"LORA","r":8,"target_modules":["q"],"base_model_name_or_path":"gpt2-tiny"}`
		}), ReasonConfig, ""},
		{"config not JSON", p, with(func(h *compress.Header) { h.Config = "this is not json" }), ReasonConfig, ""},
		{"bias", p, loraHeader("gpt2-tiny", 8, `"bias": "lora_only"`), ReasonBias, ""},
		{"bias all", p, loraHeader("gpt2-tiny", 8, `"bias": "all"`), ReasonBias, ""},
		{"modules_to_save lm_head", p, loraHeader("gpt2-tiny", 8, `"modules_to_save": ["lm_head"]`), ReasonModulesToSave, ""},
		{"modules_to_save score", p, with(func(h *compress.Header) {
			h.Config = strings.Replace(h.Config, `"bias"`, `"modules_to_save": ["score"], "bias"`, 1)
			h.Tensors = append(h.Tensors, compress.TensorHeader{Name: "base_model.model.score.weight", Shape: []int64{2, 384}})
		}), "", ""},
		{"dora", p, loraHeader("gpt2-tiny", 8, `"use_dora": true`), ReasonDoRA, ""},
		{"lora_bias", p, loraHeader("gpt2-tiny", 8, `"lora_bias": true`), ReasonLoRABias, ""},
		{"lora_B.bias tensor", p, with(func(h *compress.Header) {
			h.Tensors = append(h.Tensors, compress.TensorHeader{Name: "base_model.model.blocks.0.attn.qkv.lora_B.bias", Shape: []int64{1152}})
		}), ReasonTensors, ""},
		{"pissa", p, loraHeader("gpt2-tiny", 8, `"init_lora_weights": "pissa_niter_4"`), ReasonInitWeights, ""},
		{"loftq", p, loraHeader("gpt2-tiny", 8, `"init_lora_weights": "loftq"`), ReasonInitWeights, ""},
		{"gaussian init", p, loraHeader("gpt2-tiny", 8, `"init_lora_weights": "gaussian"`), "", ""},
		{"alora", p, loraHeader("gpt2-tiny", 8, `"alora_invocation_tokens": [1, 2]`), ReasonALoRA, ""},
		{"layer_replication", p, loraHeader("gpt2-tiny", 8, `"layer_replication": [[0, 4], [2, 5]]`), ReasonLayerReplication, ""},
		{"qalora", p, loraHeader("gpt2-tiny", 8, `"use_qalora": true`), ReasonQALoRA, ""},
		{"ia3", p, &compress.Header{PeftType: "IA3", Config: `{"peft_type":"IA3"}`}, ReasonPeftType, ""},
		{"residual", p, &compress.Header{PeftType: "FULL", Base: "abc"}, ReasonNotAdapter, ""},
		{"a base fingerprint makes a residual", p, with(func(h *compress.Header) { h.Base = "abc" }), ReasonNotAdapter, ""},
	} {
		fill, r := c.p.CheckHeader(c.h)
		switch {
		case c.reason == "" && r != nil:
			t.Errorf("%s: refused: %v", c.name, r)
		case c.reason != "" && (r == nil || r.Reason != c.reason):
			t.Errorf("%s: %+v, want reason %s", c.name, r, c.reason)
		case fill != c.fill:
			t.Errorf("%s: fill %q, want %q", c.name, fill, c.fill)
		}
	}
}

func TestCheckAnnounced(t *testing.T) {
	p := Policy{ServedModel: "gpt2-tiny", MaxLoRARank: 32}
	for _, c := range []struct {
		a      Announced
		reason string
	}{
		{Announced{PeftType: "lora", BaseModel: "gpt2-tiny", Rank: 32}, ""},
		{Announced{PeftType: "LORA", BaseModel: "gpt2-tiny"}, ""}, // rank unknown: checked once held
		{Announced{PeftType: "LORA", BaseModel: "gpt2-tiny", Rank: 33}, ReasonRank},
		{Announced{PeftType: "LORA", BaseModel: "llama", Rank: 8}, ReasonOtherBase},
		{Announced{PeftType: "LORA", Rank: 8}, ReasonUnknownBase},
		{Announced{PeftType: "IA3", BaseModel: "gpt2-tiny"}, ReasonPeftType},
		{Announced{PeftType: "FULL", BaseModel: "gpt2-tiny"}, ReasonNotAdapter},
	} {
		r := p.CheckAnnounced(c.a)
		if (c.reason == "") != (r == nil) || (r != nil && r.Reason != c.reason) {
			t.Errorf("%+v: %+v, want %q", c.a, r, c.reason)
		}
	}
}

// FuzzCheckHeader feeds the policy any adapter_config.json (it comes from
// a peer's container): a verdict, never a panic, and a refusal always
// says why.
func FuzzCheckHeader(f *testing.F) {
	f.Add(loraHeader("gpt2-tiny", 16, "").Config)
	f.Add(`{"peft_type":"LORA","r":1e400,"lora_alpha":1,"target_modules":"q","rank_pattern":{"a":"x","b":99}}`)
	f.Add(`{"r":null,"lora_alpha":[],"target_modules":{},"init_lora_weights":{"x":1},"bias":null}`)
	f.Add(`[1,2]`)
	p := Policy{ServedModel: "gpt2-tiny", AcceptUnknownBase: true}
	f.Fuzz(func(t *testing.T, cfg string) {
		h := loraHeader("gpt2-tiny", 16, "")
		h.Config = cfg
		if _, r := p.CheckHeader(h); r != nil && (r.Reason == "" || r.Detail == "") {
			t.Fatalf("refusal without a reason: %+v", r)
		}
	})
}
