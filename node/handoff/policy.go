package handoff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/expertd/expertd/compress"
)

// Policy decides which experts are handed to the inference server: only
// LoRA adapters for the served base model that vLLM (and LoRAX) can load.
// Its checks are pure functions of an expert's metadata: CheckAnnounced
// takes what gossip tells of an expert, before it is fetched; CheckHeader
// takes the container's header, with the adapter's whole
// adapter_config.json and its tensor shapes, before anything is written.
//
// What vLLM refuses is mirrored from vLLM's own code (upstream commit
// 9aaf83ef5, the v0.22 cycle): PEFTHelper.validate_legal refuses
// modules_to_save, use_dora, r > --max-lora-rank and bias != "none"
// (vllm/lora/peft_helper.py); the tensor names it cannot parse, such as
// lora_B.bias (lora_bias) and DoRA's magnitude vectors, fail in
// parse_fine_tuned_lora_name (vllm/lora/utils.py); a module whose tensor
// rank exceeds --max-lora-rank (a rank_pattern entry) fails copying into the
// GPU slots. vLLM does not check init_lora_weights, aLoRA, layer_replication
// nor QALoRA: it loads such adapters and produces wrong output, so expertd
// refuses them as a policy of its own (the Reason says which is which).
type Policy struct {
	// ServedModel is the model the server serves, exactly as given to
	// `vllm serve` (vLLM compares adapters' base_model_name_or_path with
	// it). "" checks no base model.
	ServedModel string
	// BaseAliases are other names of the served model's weights (a Hub ID
	// and a local path, say); an adapter for an alias is written with
	// ServedModel as its base, which vLLM's filesystem resolver requires.
	BaseAliases []string
	// AcceptUnknownBase hands off adapters that record no base model,
	// written with ServedModel as their base.
	AcceptUnknownBase bool
	// MaxLoRARank is the server's --max-lora-rank (0: DefaultMaxLoRARank).
	MaxLoRARank int
}

// DefaultMaxLoRARank is vLLM's default --max-lora-rank.
const DefaultMaxLoRARank = 16

// MaxLoRARanks are the values vLLM accepts for --max-lora-rank
// (vllm/config/lora.py, MaxLoRARanks); it refuses to start with another.
var MaxLoRARanks = []int{1, 8, 16, 32, 64, 128, 256, 320, 512}

// Reasons an expert is not handed to the inference server
// (Refusal.Reason). Those marked "vLLM" are refused by vLLM itself; the
// "policy" ones vLLM would load and serve wrong.
const (
	ReasonNotAdapter       = "not_adapter"       // a full fine-tuning residual
	ReasonPeftType         = "peft_type"         // not LoRA (IA3, ...): vLLM and LoRAX load LoRA only
	ReasonConfig           = "config"            // adapter_config.json unreadable or missing r, lora_alpha, target_modules (vLLM)
	ReasonOtherBase        = "other_base"        // trained for another base model (vLLM loads it into the wrong slots)
	ReasonUnknownBase      = "unknown_base"      // no base recorded, and inference.accept_unknown_base is off
	ReasonRank             = "rank"              // r, a rank_pattern value or a tensor's rank over max_lora_rank (vLLM)
	ReasonBias             = "bias"              // bias != "none" (vLLM)
	ReasonModulesToSave    = "modules_to_save"   // full modules besides the LoRA weights (vLLM)
	ReasonDoRA             = "dora"              // use_dora (vLLM)
	ReasonLoRABias         = "lora_bias"         // lora_bias: lora_B.bias tensors (vLLM)
	ReasonTensors          = "tensors"           // a tensor vLLM cannot parse as a LoRA weight (vLLM)
	ReasonInitWeights      = "init_lora_weights" // PiSSA, OLoRA, LoftQ, CorDA...: needs a modified base (policy)
	ReasonALoRA            = "alora"             // activated LoRA (policy)
	ReasonLayerReplication = "layer_replication" // (policy)
	ReasonQALoRA           = "qalora"            // (policy)
	ReasonUntrusted        = "untrusted"         // not from a trusted publisher (trust.publishers)
)

// Refusal says why an expert is not handed to the inference server. It
// is an error matching ErrRefused (and ErrNotAdapter for
// ReasonNotAdapter).
type Refusal struct {
	Reason string // a Reason constant
	Detail string // a sentence saying what and which setting decides it
}

func (r *Refusal) Error() string { return "handoff: not handed to the inference server: " + r.Detail }

// Is makes errors.Is(r, ErrRefused) hold.
func (r *Refusal) Is(target error) bool {
	return target == ErrRefused || (target == ErrNotAdapter && r.Reason == ReasonNotAdapter)
}

func refuse(reason, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Announced is what an announcement tells of an expert.
type Announced struct {
	PeftType  string
	BaseModel string // "" if none is recorded
	Rank      int    // 0 if unknown
}

// CheckAnnounced applies to an announced expert the checks its metadata
// allows (PEFT type, base model, rank), so that nothing is fetched for the
// server that it could not load; nil if it passes. The rest is checked by
// CheckHeader once the expert is held.
func (p Policy) CheckAnnounced(a Announced) *Refusal {
	if strings.EqualFold(a.PeftType, compress.PeftTypeFull) {
		return refuse(ReasonNotAdapter, "a full fine-tuning residual, not an adapter")
	}
	if r := checkPeftType(a.PeftType); r != nil {
		return r
	}
	if _, r := p.base(a.BaseModel); r != nil {
		return r
	}
	if a.Rank > p.maxRank() {
		return p.rankRefusal(fmt.Sprintf("LoRA rank %d", a.Rank))
	}
	return nil
}

// CheckHeader applies every check to an expert's container header. It
// returns the base model to write into adapter_config.json ("" to leave
// the file as it is) or why the expert is refused.
func (p Policy) CheckHeader(h *compress.Header) (fill string, _ *Refusal) {
	if h.PeftType == compress.PeftTypeFull || h.Base != "" {
		return "", refuse(ReasonNotAdapter, "a full fine-tuning residual, not an adapter")
	}
	if r := checkPeftType(h.PeftType); r != nil {
		return "", r
	}
	var c loraConfig
	if err := decodeConfig([]byte(h.Config), &c); err != nil {
		return "", refuse(ReasonConfig, "adapter_config.json: %v", err)
	}
	base := ""
	if c.BaseModel != nil {
		base = *c.BaseModel
	}
	fill, r := p.base(base)
	if r != nil {
		return "", r
	}
	if r := p.checkConfig(&c); r != nil {
		return "", r
	}
	if r := p.checkTensors(h.Tensors, c.ModulesToSave); r != nil {
		return "", r
	}
	if fill == base {
		fill = "" // nothing to change
	}
	return fill, nil
}

func checkPeftType(t string) *Refusal {
	if !strings.EqualFold(t, "LORA") {
		return refuse(ReasonPeftType, "peft_type %q: vLLM and LoRAX load LoRA adapters only", t)
	}
	return nil
}

// base returns the base model to record for an adapter whose own is b, or
// why it is refused.
func (p Policy) base(b string) (string, *Refusal) {
	switch {
	case p.ServedModel == "" || b == p.ServedModel:
		return b, nil
	case b == "" && p.AcceptUnknownBase:
		return p.ServedModel, nil
	case b == "":
		return "", refuse(ReasonUnknownBase, "no base model recorded; set inference.accept_unknown_base to hand it off as one for %q", p.ServedModel)
	case slices.Contains(p.BaseAliases, b):
		return p.ServedModel, nil
	}
	return "", refuse(ReasonOtherBase, "trained for base model %q, not the served %q (inference.served_model, inference.base_model_aliases)", b, p.ServedModel)
}

func (p Policy) maxRank() int {
	if p.MaxLoRARank <= 0 {
		return DefaultMaxLoRARank
	}
	return p.MaxLoRARank
}

func (p Policy) rankRefusal(what string) *Refusal {
	return refuse(ReasonRank, "%s is greater than max_lora_rank %d (inference.max_lora_rank, vllm serve --max-lora-rank)", what, p.maxRank())
}

// loraConfig holds the adapter_config.json fields the checks read.
type loraConfig struct {
	BaseModel        *string         `json:"base_model_name_or_path"`
	R                *json.Number    `json:"r"`
	LoRAAlpha        json.RawMessage `json:"lora_alpha"`
	TargetModules    json.RawMessage `json:"target_modules"`
	RankPattern      map[string]any  `json:"rank_pattern"`
	Bias             *string         `json:"bias"`
	ModulesToSave    []string        `json:"modules_to_save"`
	UseDoRA          bool            `json:"use_dora"`
	LoRABias         bool            `json:"lora_bias"`
	InitLoRAWeights  json.RawMessage `json:"init_lora_weights"`
	ALoRA            json.RawMessage `json:"alora_invocation_tokens"`
	LayerReplication json.RawMessage `json:"layer_replication"`
	UseQALoRA        bool            `json:"use_qalora"`
	raw              map[string]bool // the keys present
}

func decodeConfig(doc []byte, c *loraConfig) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(doc, &keys); err != nil {
		return fmt.Errorf("not a JSON object: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(c); err != nil {
		return err
	}
	c.raw = map[string]bool{}
	for k := range keys {
		c.raw[k] = true
	}
	return nil
}

// checkConfig applies vLLM's validate_legal and expertd's own rules.
func (p Policy) checkConfig(c *loraConfig) *Refusal {
	var missing []string
	for _, k := range []string{"r", "lora_alpha", "target_modules"} {
		if !c.raw[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return refuse(ReasonConfig, "adapter_config.json lacks %s (vLLM: Missing required configuration fields)", strings.Join(missing, ", "))
	}
	if c.R == nil {
		return refuse(ReasonConfig, "adapter_config.json: r is null, want a positive number")
	}
	r, err := c.R.Float64()
	if err != nil || r <= 0 {
		return refuse(ReasonConfig, "adapter_config.json: r = %s, want a positive number", c.R)
	}
	if r > float64(p.maxRank()) {
		return p.rankRefusal("LoRA rank " + c.R.String())
	}
	for module, v := range c.RankPattern {
		if n, ok := v.(json.Number); ok {
			if f, err := n.Float64(); err == nil && f > float64(p.maxRank()) {
				return p.rankRefusal(fmt.Sprintf("rank_pattern rank %s of %q", n, module))
			}
		}
	}
	if c.Bias != nil && *c.Bias != "none" {
		return refuse(ReasonBias, "bias %q (vLLM: Adapter bias is not supported.)", *c.Bias)
	}
	if extra := slices.DeleteFunc(slices.Clone(c.ModulesToSave), savableModule); len(extra) > 0 {
		return refuse(ReasonModulesToSave, "modules_to_save %q (vLLM only supports modules_to_save being None; newer releases allow score and classifier)", extra)
	}
	if c.UseDoRA {
		return refuse(ReasonDoRA, "use_dora (vLLM does not yet support DoRA.)")
	}
	if c.LoRABias {
		return refuse(ReasonLoRABias, "lora_bias: vLLM cannot load lora_B.bias tensors")
	}
	if init, ok := initWeights(c.InitLoRAWeights); !ok {
		return refuse(ReasonInitWeights, "init_lora_weights %s trains against a modified base model (PiSSA, OLoRA, LoftQ, CorDA...): vLLM would serve it wrong; convert it with PEFT's path_initial_model_for_weight_conversion first (expertd policy)", init)
	}
	if present(c.ALoRA) {
		return refuse(ReasonALoRA, "alora_invocation_tokens: an activated LoRA, which vLLM would apply as a plain LoRA (expertd policy)")
	}
	if present(c.LayerReplication) {
		return refuse(ReasonLayerReplication, "layer_replication: vLLM ignores it and would serve the adapter wrong (expertd policy)")
	}
	if c.UseQALoRA {
		return refuse(ReasonQALoRA, "use_qalora: vLLM would apply it as a plain LoRA (expertd policy)")
	}
	return nil
}

// savableModule reports whether a modules_to_save entry is one newer vLLM
// releases load (sequence classification heads, vLLM PR #53555).
func savableModule(m string) bool { return m == "score" || m == "classifier" }

// initWeights reports whether an init_lora_weights value leaves the base
// model as it is: true, false, "gaussian", "eva", "orthogonal" or absent.
func initWeights(raw json.RawMessage) (string, bool) {
	s := strings.TrimSpace(string(raw))
	switch s {
	case "", "null", "true", "false", `"gaussian"`, `"eva"`, `"orthogonal"`:
		return s, true
	}
	return s, false
}

// present reports whether a JSON value is set: not absent, null, false, 0,
// "" or empty.
func present(raw json.RawMessage) bool {
	switch strings.TrimSpace(string(raw)) {
	case "", "null", "false", "0", `""`, "[]", "{}":
		return false
	}
	return true
}

// checkTensors checks the tensor names and ranks as vLLM reads them
// (parse_fine_tuned_lora_name, and the GPU slots of --max-lora-rank).
func (p Policy) checkTensors(ts []compress.TensorHeader, save []string) *Refusal {
	for _, t := range ts {
		name := strings.TrimPrefix(t.Name, "base_model.model.")
		rankDim := -1
		switch {
		case strings.HasSuffix(name, ".lora_A.weight"), strings.HasSuffix(name, ".lora_embedding_A"):
			rankDim = 0
		case strings.HasSuffix(name, ".lora_B.weight"), strings.HasSuffix(name, ".lora_embedding_B"):
			rankDim = 1
		case strings.HasSuffix(name, ".embed_tokens.base_layer.weight"), strings.HasSuffix(name, ".lm_head.base_layer.weight"):
			continue // vLLM skips these
		case savedTensor(name, save):
			continue
		default:
			return refuse(ReasonTensors, "tensor %s is not a LoRA weight (vLLM: %s is unsupported LoRA weight)", t.Name, name)
		}
		if len(t.Shape) != 2 {
			return refuse(ReasonTensors, "tensor %s has shape %v, want 2 dimensions", t.Name, t.Shape)
		}
		if r := t.Shape[rankDim]; r > int64(p.maxRank()) {
			return p.rankRefusal(fmt.Sprintf("the rank %d of tensor %s", r, t.Name))
		}
	}
	return nil
}

// savedTensor reports whether name is a weight of a modules_to_save entry
// that newer vLLM releases load (score, classifier).
func savedTensor(name string, save []string) bool {
	for _, m := range save {
		if savableModule(m) && (strings.HasPrefix(name, m+".") || strings.Contains(name, "."+m+".")) {
			return true
		}
	}
	return false
}
