package fakevllm

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// body decodes a request body into the named fields as pydantic does for
// vLLM's request models (extra fields ignored). kinds maps a field to
// "str" or "bool"; required fields must be present. ok false: a 400 was
// written.
func (s *Server) body(w http.ResponseWriter, r *http.Request, model string, kinds map[string]string, required ...string) (map[string]any, bool) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var fields map[string]json.RawMessage
	if err == nil {
		err = json.Unmarshal(raw, &fields)
	}
	if err != nil || fields == nil {
		s.invalid(w, fmt.Sprintf("[{'type': 'json_invalid', 'loc': ('body', 0), 'msg': 'JSON decode error', 'model': '%s'}]", model))
		return nil, false
	}
	out := map[string]any{}
	for name, kind := range kinds {
		v, ok := fields[name]
		if !ok {
			continue
		}
		var err error
		switch kind {
		case "str":
			var x string
			err = json.Unmarshal(v, &x)
			out[name] = x
		case "bool":
			var x bool
			err = json.Unmarshal(v, &x)
			out[name] = x
		}
		if err != nil {
			s.invalid(w, fmt.Sprintf("[{'type': '%s_type', 'loc': ('body', '%s'), 'msg': 'Input should be a valid %s'}]", kind, name, kind))
			return nil, false
		}
	}
	for _, name := range required {
		if _, ok := out[name]; !ok {
			s.invalid(w, fmt.Sprintf("[{'type': 'missing', 'loc': ('body', '%s'), 'msg': 'Field required'}]", name))
			return nil, false
		}
	}
	return out, true
}

// load answers POST /v1/load_lora_adapter (OpenAIServingModels.
// load_lora_adapter): the request checks, then the engine's add_lora.
func (s *Server) load(w http.ResponseWriter, r *http.Request) {
	kinds := map[string]string{"lora_name": "str", "lora_path": "str"}
	if s.o.Generation == Latest {
		kinds["load_inplace"] = "bool" // older request models drop the field
	}
	req, ok := s.body(w, r, "LoadLoRAAdapterRequest", kinds, "lora_name", "lora_path")
	if !ok {
		return
	}
	name, path := req["lora_name"].(string), req["lora_path"].(string)
	inplace, _ := req["load_inplace"].(bool)
	call := "load " + name
	if inplace {
		call += " inplace"
	}
	s.calls = append(s.calls, call)
	if name == "" || path == "" {
		s.fail(w, http.StatusBadRequest, "InvalidUserInput", "Both 'lora_name' and 'lora_path' must be provided.", nil)
		return
	}
	old := s.find(name)
	if old != nil && !inplace {
		msg := fmt.Sprintf("The lora adapter '%s' has already been loaded.", name)
		if s.o.Generation == Latest {
			msg += " If you want to load the adapter in place, set 'load_inplace' to True."
		}
		s.fail(w, http.StatusBadRequest, "InvalidUserInput", msg, nil)
		return
	}
	garbage, err := s.addLoRA(path)
	if err != nil {
		s.engineError(w, name, path, err)
		return
	}
	if old != nil { // in place: same id, same place in the list, the new files
		old.path, old.inplace, old.garbage, old.stale = path, true, garbage, true
	} else {
		s.counter++
		s.loras = append(s.loras, &lora{name: name, path: path, id: s.counter, inplace: inplace, garbage: garbage})
	}
	writeText(w, fmt.Sprintf("Success: LoRA adapter '%s' added successfully.", name))
}

// unload answers POST /v1/unload_lora_adapter. vLLM drops the name only:
// the engine keeps the weights until its caches evict them.
func (s *Server) unload(w http.ResponseWriter, r *http.Request) {
	req, ok := s.body(w, r, "UnloadLoRAAdapterRequest", map[string]string{"lora_name": "str"}, "lora_name")
	if !ok {
		return
	}
	name := req["lora_name"].(string)
	s.calls = append(s.calls, "unload "+name)
	if name == "" {
		s.fail(w, http.StatusBadRequest, "InvalidUserInput", "'lora_name' needs to be provided to unload a LoRA adapter.", nil)
		return
	}
	for i, l := range s.loras {
		if l.name == name {
			s.loras = append(s.loras[:i], s.loras[i+1:]...)
			writeText(w, fmt.Sprintf("Success: LoRA adapter '%s' removed successfully.", name))
			return
		}
	}
	s.fail(w, http.StatusNotFound, "NotFoundError", fmt.Sprintf("The lora adapter '%s' cannot be found.", name), nil)
}

// engineError answers an add_lora failure: a missing adapter is a 404
// NotFoundError in every generation; anything else is the engine's
// message behind "Call to add_lora method failed: ", a 500
// InternalServerError (400 BadRequestError before ≈v0.18).
func (s *Server) engineError(w http.ResponseWriter, name, path string, err error) {
	if _, ok := err.(notFound); ok {
		s.fail(w, http.StatusNotFound, "NotFoundError", fmt.Sprintf("Loading lora %s failed: No adapter found for %s", name, path), nil)
		return
	}
	msg := "Call to add_lora method failed: " + err.Error()
	if s.o.Generation == Latest {
		s.fail(w, http.StatusInternalServerError, "InternalServerError", msg, nil)
		return
	}
	s.fail(w, http.StatusBadRequest, "BadRequestError", msg, nil)
}

// complete answers POST /v1/completions and /v1/chat/completions as far as
// the model check goes (_check_model): a served name, or a registered
// adapter, answers 200; an unknown one is offered to the resolver (with
// runtime updating), else 404. An adapter loaded in place is read again
// from its path, as vLLM's sticky load_inplace does on every step; a read
// that fails kills the engine.
func (s *Server) complete(w http.ResponseWriter, r *http.Request) {
	req, ok := s.body(w, r, "CompletionRequest", map[string]string{"model": "str"})
	if !ok {
		return
	}
	model, _ := req["model"].(string)
	if model == "" {
		model = s.o.Base.Served[0]
	}
	if l := s.find(model); l != nil {
		if l.inplace {
			if _, err := s.addLoRA(l.path); err != nil {
				s.dead = true
				s.fail(w, http.StatusInternalServerError, "InternalServerError", "EngineCore encountered an issue. See stack trace (above) for the root cause.", nil)
				return
			}
		}
		s.completion(w, model)
		return
	}
	for _, served := range s.o.Base.Served {
		if model == served {
			s.completion(w, model)
			return
		}
	}
	if s.o.RuntimeUpdating && s.o.Resolver != nil {
		if path, found := s.o.Resolver(s.o.Base.Model, model); found {
			s.counter++
			garbage, err := s.addLoRA(path)
			if err != nil {
				s.fail(w, http.StatusBadRequest, "BadRequestError", fmt.Sprintf("LoRA adapter '%s' was found but could not be loaded.", model), nil)
				return
			}
			s.loras = append(s.loras, &lora{name: model, path: path, id: s.counter, garbage: garbage})
			s.completion(w, model)
			return
		}
	}
	var param *string
	if s.o.Generation == Latest {
		p := "model"
		param = &p
	}
	s.fail(w, http.StatusNotFound, "NotFoundError", fmt.Sprintf("The model `%s` does not exist.", model), param)
}

func (s *Server) completion(w http.ResponseWriter, model string) {
	writeJSON(w, http.StatusOK, map[string]any{"id": "cmpl-fake", "object": "text_completion", "model": model,
		"choices": []map[string]any{{"index": 0, "text": "", "finish_reason": "length"}}})
}

// pyRepr writes a Python set or list repr of strings, sorted for sets.
func pyRepr(open, close string, items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = "'" + s + "'"
	}
	return open + strings.Join(q, ", ") + close
}
