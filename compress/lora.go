package compress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// PEFT types the merge and the refit know.
const (
	PeftTypeLoRA = "LORA"
	PeftTypeIA3  = "IA3"
)

// loraPair is one LoRA module: the indexes of its A ([r, in]) and B
// ([out, r]) tensors in a tensor list.
type loraPair struct {
	Module string
	A, B   int
	R      int
	In     int
	Out    int
}

// loraSuffixes maps the name endings of LoRA factors (linear and
// embedding layers) to the factor they hold.
var loraSuffixes = []struct{ a, b string }{
	{".lora_A.weight", ".lora_B.weight"},
	{".lora_embedding_A", ".lora_embedding_B"},
}

// isLoRAFactor tells whether name ends like a LoRA factor.
func isLoRAFactor(name string) bool {
	for _, sfx := range loraSuffixes {
		if strings.HasSuffix(name, sfx.a) || strings.HasSuffix(name, sfx.b) {
			return true
		}
	}
	return false
}

// loraPairs finds the LoRA modules of ts, in module name order, and the
// indexes of the tensors that are not LoRA factors.
func loraPairs(ts []Tensor) (pairs []loraPair, rest []int, err error) {
	idx := make(map[string]int, len(ts))
	for i, t := range ts {
		idx[t.Name] = i
	}
	used := make([]bool, len(ts))
	for i, t := range ts {
		for _, sfx := range loraSuffixes {
			mod, ok := strings.CutSuffix(t.Name, sfx.a)
			if !ok {
				continue
			}
			j, ok := idx[mod+sfx.b]
			if !ok {
				return nil, nil, fmt.Errorf("%w: %s has no %s", ErrInput, t.Name, mod+sfx.b)
			}
			a, b := ts[i], ts[j]
			if len(a.Shape) != 2 || len(b.Shape) != 2 || a.Shape[0] != b.Shape[1] || a.Shape[0] < 1 {
				return nil, nil, fmt.Errorf("%w: LoRA module %s: A is %v and B is %v, want [r, in] and [out, r]", ErrShape, mod, a.Shape, b.Shape)
			}
			pairs = append(pairs, loraPair{Module: mod, A: i, B: j, R: int(a.Shape[0]), In: int(a.Shape[1]), Out: int(b.Shape[0])})
			used[i], used[j] = true, true
		}
	}
	for i, t := range ts {
		if !used[i] {
			for _, sfx := range loraSuffixes {
				if strings.HasSuffix(t.Name, sfx.b) {
					return nil, nil, fmt.Errorf("%w: %s has no matching A factor", ErrInput, t.Name)
				}
			}
			rest = append(rest, i)
		}
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].Module < pairs[j].Module })
	return pairs, rest, nil
}

// peftConfig is what the merge reads of an adapter_config.json.
type peftConfig struct {
	PeftType     string          `json:"peft_type"`
	Base         *string         `json:"base_model_name_or_path"`
	R            json.Number     `json:"r"`
	LoraAlpha    json.Number     `json:"lora_alpha"`
	UseRSLoRA    bool            `json:"use_rslora"`
	UseDoRA      bool            `json:"use_dora"`
	FanInFanOut  bool            `json:"fan_in_fan_out"`
	RankPattern  map[string]any  `json:"rank_pattern"`
	AlphaPattern map[string]any  `json:"alpha_pattern"`
	Targets      json.RawMessage `json:"target_modules"`
	FeedForward  json.RawMessage `json:"feedforward_modules"`
}

func parsePeftConfig(cfg string) (peftConfig, error) {
	var c peftConfig
	d := json.NewDecoder(strings.NewReader(cfg))
	d.UseNumber()
	if err := d.Decode(&c); err != nil {
		return c, fmt.Errorf("%w: adapter config: %v", ErrInput, err)
	}
	return c, nil
}

// scale is the factor PEFT multiplies a LoRA product by: lora_alpha / r,
// or lora_alpha / sqrt(r) with rsLoRA.
func (c peftConfig) scale(r int) (float64, error) {
	alpha, err := c.LoraAlpha.Float64()
	if err != nil || !(alpha > 0) || math.IsInf(alpha, 0) {
		return 0, fmt.Errorf("%w: lora_alpha %q", ErrInput, c.LoraAlpha)
	}
	if c.UseRSLoRA {
		return alpha / math.Sqrt(float64(r)), nil
	}
	return alpha / float64(r), nil
}

// targets renders target_modules comparably: a sorted list, or a regex.
func (c peftConfig) targets() string { return normalizeModules(c.Targets) }

func normalizeModules(raw json.RawMessage) string {
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		sort.Strings(list)
		b, _ := json.Marshal(list)
		return string(b)
	}
	return string(bytes.TrimSpace(raw))
}

// setLoRARank rewrites an adapter config for rank r with lora_alpha = r
// (scale 1), no per-module patterns and no rsLoRA.
func setLoRARank(cfg string, r int) (string, error) {
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(cfg))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return "", fmt.Errorf("%w: adapter config: %v", ErrInput, err)
	}
	m["r"], m["lora_alpha"] = r, r
	m["rank_pattern"], m["alpha_pattern"] = map[string]any{}, map[string]any{}
	if _, ok := m["use_rslora"]; ok {
		m["use_rslora"] = false
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", err
	}
	return string(b), nil
}
