package handoff

import (
	"strings"
	"testing"
)

// adapter_config.json's r is checked against max_lora_rank on its own, as
// vLLM's validate_legal does, at the boundary: r one over the limit is
// refused even when the tensors' ranks are within it (the tensor check
// hid an off-by-one in the r check from every other case, issue 19).
func TestCheckHeaderConfigRankBoundary(t *testing.T) {
	for _, c := range []struct {
		p    Policy
		r    string
		want string // "" passes
	}{
		{Policy{ServedModel: "gpt2-tiny"}, "16", ""},
		{Policy{ServedModel: "gpt2-tiny"}, "17", ReasonRank},
		{Policy{ServedModel: "gpt2-tiny", MaxLoRARank: 64}, "64", ""},
		{Policy{ServedModel: "gpt2-tiny", MaxLoRARank: 64}, "65", ReasonRank},
	} {
		h := loraHeader("gpt2-tiny", 8, "") // tensors of rank 8
		h.Config = strings.Replace(h.Config, `"r": 8,`, `"r": `+c.r+`,`, 1)
		_, r := c.p.CheckHeader(h)
		switch {
		case c.want == "" && r != nil:
			t.Errorf("r %s, max %d: refused: %v", c.r, c.p.maxRank(), r)
		case c.want != "" && (r == nil || r.Reason != c.want):
			t.Errorf("r %s, max %d: %+v, want reason %s", c.r, c.p.maxRank(), r, c.want)
		}
	}
}

// Every init_lora_weights that trains against a modified base model is
// refused, by its plain name too: PEFT writes "pissa" for PiSSA's default
// (only "pissa_niter_4" was tried, issue 19), "olora", "corda", "loftq".
func TestCheckHeaderInitWeights(t *testing.T) {
	p := Policy{ServedModel: "gpt2-tiny"}
	for _, v := range []string{`"pissa"`, `"pissa_niter_16"`, `"olora"`, `"corda"`, `"loftq"`} {
		if _, r := p.CheckHeader(loraHeader("gpt2-tiny", 8, `"init_lora_weights": `+v)); r == nil || r.Reason != ReasonInitWeights {
			t.Errorf("init_lora_weights %s: %+v, want reason %s", v, r, ReasonInitWeights)
		}
	}
	for _, v := range []string{"true", "false", `"gaussian"`, `"eva"`, `"orthogonal"`} {
		if _, r := p.CheckHeader(loraHeader("gpt2-tiny", 8, `"init_lora_weights": `+v)); r != nil {
			t.Errorf("init_lora_weights %s: refused: %v", v, r)
		}
	}
}
