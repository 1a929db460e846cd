package handoff

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/expertd/expertd/compress/safetensors"
)

// fakeVLLM answers /v1/load_lora_adapter, /v1/unload_lora_adapter and
// /v1/models as a vLLM started with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True does
// (vllm/entrypoints/openai/models/serving.py, serve/lora/api_router.py):
// 200 and a plain-text "Success: ..." message, or a JSON ErrorResponse with
// the HTTP status in its code. Unlike vLLM's load route, it also checks what
// vLLM's filesystem resolver checks (peft_type LORA and
// base_model_name_or_path equal to the served model) and parses the weights
// completely, so a partial or missing file is refused.
type fakeVLLM struct {
	served string // the model vLLM serves

	mu sync.Mutex
	// nested selects the newer ErrorResponse shape {"error":{...}}, where
	// an adapter the engine refuses is a 500; the older flat shape answers
	// 400 BadRequestError.
	nested bool
	down   bool              // answer 503 from a proxy, as while vLLM starts
	loaded map[string]string // lora_name -> lora_path
	calls  []string          // "load NAME" or "unload NAME", in order
	lists  int               // GET /v1/models requests
}

func newFakeVLLM(served string) *fakeVLLM {
	return &fakeVLLM{served: served, loaded: map[string]string{}}
}

func (f *fakeVLLM) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

// restart forgets every adapter loaded at runtime, as a restarted vLLM does.
func (f *fakeVLLM) restart() {
	f.mu.Lock()
	f.loaded = map[string]string{}
	f.mu.Unlock()
}

// listed returns how many times the model list was asked for.
func (f *fakeVLLM) listed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists
}

// preload marks name loaded, as if by an earlier run of expertd.
func (f *fakeVLLM) preload(name, path string) {
	f.mu.Lock()
	f.loaded[name] = path
	f.mu.Unlock()
}

func (f *fakeVLLM) setNested(nested bool) {
	f.mu.Lock()
	f.nested = nested
	f.mu.Unlock()
}

func (f *fakeVLLM) isLoaded(name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.loaded[name]
	return p, ok
}

func (f *fakeVLLM) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeVLLM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method == http.MethodGet && r.URL.Path == modelsPath {
		f.lists++
	}
	if f.down {
		http.Error(w, "upstream connect error", http.StatusServiceUnavailable)
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == modelsPath {
		f.models(w)
		return
	}
	if r.Method != http.MethodPost || (r.URL.Path != loadPath && r.URL.Path != unloadPath) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound) // FastAPI's answer for a route that does not exist
		fmt.Fprint(w, `{"detail":"Not Found"}`)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnsupportedMediaType)
		fmt.Fprint(w, `{"detail":"Unsupported Media Type: Only 'application/json' is allowed"}`)
		return
	}
	var req struct {
		Name string `json:"lora_name"`
		Path string `json:"lora_path"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		f.fail(w, http.StatusBadRequest, "BadRequestError", err.Error())
		return
	}
	if r.URL.Path == unloadPath {
		f.calls = append(f.calls, "unload "+req.Name)
		f.unload(w, req.Name)
		return
	}
	f.calls = append(f.calls, "load "+req.Name)
	f.load(w, req.Name, req.Path)
}

func (f *fakeVLLM) load(w http.ResponseWriter, name, path string) {
	if name == "" || path == "" {
		f.fail(w, http.StatusBadRequest, "InvalidUserInput", "Both 'lora_name' and 'lora_path' must be provided.")
		return
	}
	if _, ok := f.loaded[name]; ok {
		f.fail(w, http.StatusBadRequest, "InvalidUserInput", fmt.Sprintf(
			"The lora adapter '%s' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True.", name))
		return
	}
	if !filepath.IsAbs(path) {
		f.fail(w, http.StatusNotFound, "NotFoundError", fmt.Sprintf("Loading lora %s failed: No adapter found for %s", name, path))
		return
	}
	if err := f.check(path); err != nil {
		if os.IsNotExist(err) {
			f.fail(w, http.StatusNotFound, "NotFoundError", fmt.Sprintf("Loading lora %s failed: No adapter found for %s", name, path))
			return
		}
		if f.nested {
			f.fail(w, http.StatusInternalServerError, "InternalServerError", err.Error())
		} else {
			f.fail(w, http.StatusBadRequest, "BadRequestError", err.Error())
		}
		return
	}
	f.loaded[name] = path
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Success: LoRA adapter '%s' added successfully.", name)
}

// check reads the adapter at dir as vLLM would.
func (f *fakeVLLM) check(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		return err
	}
	var cfg struct {
		PeftType  string  `json:"peft_type"`
		BaseModel *string `json:"base_model_name_or_path"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("adapter_config.json: %v", err)
	}
	if cfg.PeftType != "LORA" {
		return fmt.Errorf("unsupported peft_type %q", cfg.PeftType)
	}
	if cfg.BaseModel == nil || *cfg.BaseModel != f.served {
		return fmt.Errorf("base_model_name_or_path %v is not the served model %q", cfg.BaseModel, f.served)
	}
	st, err := safetensors.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		return err
	}
	defer st.Close()
	if len(st.Tensors) == 0 {
		return fmt.Errorf("adapter_model.safetensors has no tensors")
	}
	var buf []float32
	for _, ti := range st.Tensors {
		if buf, err = st.ReadFloat32(ti, buf); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeVLLM) unload(w http.ResponseWriter, name string) {
	if name == "" {
		f.fail(w, http.StatusBadRequest, "InvalidUserInput", "'lora_name' needs to be provided to unload a LoRA adapter.")
		return
	}
	if _, ok := f.loaded[name]; !ok {
		f.fail(w, http.StatusNotFound, "NotFoundError", fmt.Sprintf("The lora adapter '%s' cannot be found.", name))
		return
	}
	delete(f.loaded, name)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Success: LoRA adapter '%s' removed successfully.", name)
}

// models lists the served model and the loaded adapters as vLLM's
// show_available_models does (ModelList of ModelCard; an adapter's parent
// is the base model, its root its path).
func (f *fakeVLLM) models(w http.ResponseWriter) {
	type card struct {
		ID      string  `json:"id"`
		Object  string  `json:"object"`
		OwnedBy string  `json:"owned_by"`
		Root    string  `json:"root"`
		Parent  *string `json:"parent"`
	}
	data := []card{{ID: f.served, Object: "model", OwnedBy: "vllm", Root: f.served}}
	for name, path := range f.loaded {
		data = append(data, card{ID: name, Object: "model", OwnedBy: "vllm", Root: path, Parent: &f.served})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data})
}

// fail writes an ErrorResponse in the configured shape.
func (f *fakeVLLM) fail(w http.ResponseWriter, status int, typ, msg string) {
	info := map[string]any{"message": msg, "type": typ, "param": nil, "code": status}
	var body any = map[string]any{"error": info}
	if !f.nested {
		info["object"] = "error"
		body = info
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
