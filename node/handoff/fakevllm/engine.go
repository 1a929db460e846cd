package fakevllm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/expertd/expertd/compress/safetensors"
)

// engineErr is an error the engine raises, with vLLM's text (capitalized
// as Python's exceptions are).
type engineErr string

func (e engineErr) Error() string { return string(e) }

func failf(format string, args ...any) error { return engineErr(fmt.Sprintf(format, args...)) }

// notFound is LoRAAdapterNotFoundError: the API answers 404.
type notFound struct{ path string }

func (e notFound) Error() string { return "No adapter found for " + e.path }

// addLoRA checks an adapter as the engine's add_lora does, in its order
// (worker_manager._load_adapter): path, PEFT config, validate_legal,
// weights, tensor names, expected modules, then the copy into the GPU
// slots. garbage reports a module smaller than the base's, which vLLM
// copies into a corner of its slot without a word.
func (s *Server) addLoRA(path string) (garbage bool, err error) {
	if s.o.NoLoRA {
		return false, engineErr("LoRA is not enabled. Use --enable-lora to enable LoRA.")
	}
	dir, err := resolvePath(path)
	if err != nil {
		return false, err
	}
	if err := s.checkConfig(dir); err != nil {
		return false, err
	}
	return s.checkWeights(dir)
}

// resolvePath is get_adapter_absolute_path: an absolute path as is, an
// existing relative one made absolute, anything else a Hugging Face repo
// ID, which the fake (with no network) never finds.
func resolvePath(path string) (string, error) {
	if strings.HasPrefix(path, "~") {
		if home, err := os.UserHomeDir(); err == nil {
			path = home + path[1:]
		}
	}
	if filepath.IsAbs(path) {
		return path, nil
	}
	if _, err := os.Stat(path); err == nil {
		return filepath.Abs(path)
	}
	return "", notFound{path}
}

// checkConfig is PEFTHelper.from_local_dir, from_dict and validate_legal.
func (s *Server) checkConfig(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return notFound{dir}
	}
	if err != nil {
		return err
	}
	var cfg map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&cfg); err != nil {
		return engineErr("Expecting value: line 1 column 1 (char 0)") // json.load's text, approximately
	}
	var missing []string
	for _, k := range []string{"lora_alpha", "r", "target_modules"} {
		if _, ok := cfg[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return failf("Missing required configuration fields: %s", pyRepr("{", "}", missing))
	}
	r := strings.TrimSpace(string(cfg["r"]))
	if r == "0" || r == "0.0" {
		return engineErr("division by zero") // lora_alpha / r in __post_init__
	}
	var msgs []string
	if truthy(cfg["modules_to_save"]) {
		msgs = append(msgs, "vLLM only supports modules_to_save being None.")
	}
	if truthy(cfg["use_dora"]) {
		msgs = append(msgs, "vLLM does not yet support DoRA.")
	}
	var rank float64
	if json.Unmarshal(cfg["r"], &rank) == nil && rank > float64(s.o.MaxLoRARank) {
		msgs = append(msgs, fmt.Sprintf("LoRA rank %s is greater than max_lora_rank %d.", r, s.o.MaxLoRARank))
	}
	bias := "none"
	_ = json.Unmarshal(cfg["bias"], &bias)
	if bias != "none" {
		if s.o.Generation == V0_10 {
			msgs = append(msgs, "Adapter bias cannot be used without bias_enabled.")
		} else {
			msgs = append(msgs, "Adapter bias is not supported.")
		}
	}
	if len(msgs) > 0 {
		return errors.New(strings.Join(msgs, " "))
	}
	return nil
}

// truthy is Python's truth of a JSON value.
func truthy(raw json.RawMessage) bool {
	switch strings.TrimSpace(string(raw)) {
	case "", "null", "false", "0", "0.0", `""`, "[]", "{}":
		return false
	}
	return true
}

// checkWeights is LoRAModel.from_local_checkpoint and the copy of each
// module into the GPU slots (BaseLinearLayerWithLoRA.set_lora).
func (s *Server) checkWeights(dir string) (garbage bool, err error) {
	st, err := safetensors.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if errors.Is(err, fs.ErrNotExist) {
		for _, other := range []string{"adapter_model.bin", "adapter_model.pt"} {
			if _, err := os.Stat(filepath.Join(dir, other)); err == nil {
				return false, failf("fake vLLM: %s is a torch pickle, which the fake does not read", other)
			}
		}
		return false, failf("%s doesn't contain tensors", dir)
	}
	if err != nil {
		return false, failf("Error while deserializing header: %v", err)
	}
	defer st.Close()
	var buf []float32
	var unexpected []string
	loras := 0
	for _, ti := range st.Tensors {
		if buf, err = st.ReadFloat32(ti, buf); err != nil {
			return false, failf("Error while deserializing header: %v", err)
		}
		name := strings.TrimPrefix(ti.Name, "base_model.model.")
		var module, kind string
		for _, suf := range []string{".lora_A.weight", ".lora_B.weight", ".lora_embedding_A", ".lora_embedding_B"} {
			if m, ok := strings.CutSuffix(name, suf); ok {
				module, kind = m, suf
			}
		}
		switch {
		case kind != "":
		case strings.HasSuffix(name, ".embed_tokens.base_layer.weight"), strings.HasSuffix(name, ".lm_head.base_layer.weight"):
			continue
		default:
			return false, failf("%s is unsupported LoRA weight", ti.Name)
		}
		loras++
		suffix := module[strings.LastIndexByte(module, '.')+1:]
		mod, known := s.o.Base.Modules[suffix]
		if s.o.Base.Modules != nil && !known {
			if !slices.Contains(unexpected, module) {
				unexpected = append(unexpected, module)
			}
			continue
		}
		if kind == ".lora_embedding_A" && s.o.Base.Vocab > 0 && len(ti.Shape) == 2 && ti.Shape[1] != s.o.Base.Vocab {
			return false, failf("The embedding LoRA size(%d) must be consistent with the base model's vocabulary size(%d).", ti.Shape[1], s.o.Base.Vocab)
		}
		if !known || strings.Contains(kind, "embedding") {
			continue
		}
		// lora_a_stacked[index, 0, :r, :in].copy_(lora_a) and
		// lora_b_stacked[index, 0, :out, :r].copy_(lora_b): a larger
		// source does not fit the slice; a smaller one fills a corner.
		slot := []int64{int64(s.o.MaxLoRARank), mod.In}
		small := len(ti.Shape) == 2 && ti.Shape[1] < mod.In
		if kind == ".lora_B.weight" {
			slot = []int64{mod.Out, int64(s.o.MaxLoRARank)}
			small = len(ti.Shape) == 2 && ti.Shape[0] < mod.Out
		}
		if err := copyInto(slot, ti.Shape); err != nil {
			return false, err
		}
		garbage = garbage || small
	}
	if len(unexpected) > 0 {
		expected := make([]string, 0, len(s.o.Base.Modules))
		for m := range s.o.Base.Modules {
			expected = append(expected, m)
		}
		slices.Sort(expected)
		return false, failf("While loading %s, expected target modules in %s but received %s. Please verify that the loaded LoRA module is correct",
			dir, pyRepr("{", "}", expected), pyRepr("[", "]", unexpected))
	}
	if loras == 0 {
		return false, engineErr("") // StopIteration in the model manager
	}
	return garbage, nil
}

// copyInto is torch's copy_ of src into the slice [:src[0], :src[1]] of
// a slot: a dimension of src larger than the slot's fails as torch says.
func copyInto(slot, src []int64) error {
	if len(src) != len(slot) {
		return failf("The size of tensor a (%d) must match the size of tensor b (%d) at non-singleton dimension %d", slot[0], len(src), 0)
	}
	for d := len(src) - 1; d >= 0; d-- {
		if src[d] > slot[d] {
			return failf("The size of tensor a (%d) must match the size of tensor b (%d) at non-singleton dimension %d", slot[d], src[d], d)
		}
	}
	return nil
}

// Check reports whether the engine would load the adapter at path (an
// add_lora without registering it), with vLLM's message if not.
func (s *Server) Check(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.addLoRA(path)
	return err
}
