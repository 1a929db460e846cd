// Package fakevllm is a stand-in for vLLM's OpenAI-compatible server in
// tests of the hand-off: the runtime LoRA routes, /v1/models, completions
// naming a model, API-key authentication, and what the engine checks when
// it loads an adapter, route by route and error by error.
//
// It mirrors vLLM at upstream commit 9aaf83ef5 (2026-05-19, the v0.22
// development cycle), Generation Latest, read in these files:
// entrypoints/serve/lora/{api_router,protocol}.py (routes, bodies),
// entrypoints/openai/models/serving.py (load, unload, model cards, the
// per-name lock, load_inplace), entrypoints/openai/engine/protocol.py and
// entrypoints/utils.py (ErrorResponse), entrypoints/openai/utils.py
// (validate_json_request), entrypoints/openai/server_utils.py
// (AuthenticationMiddleware), lora/peft_helper.py (from_dict,
// validate_legal), lora/lora_model.py and lora/utils.py (weights, tensor
// names, expected modules), layers/base_linear.py (the copy into the GPU
// slots), lora/worker_manager.py and v1/engine/core.py (how engine errors
// reach the API). Older releases answer differently, and Generation
// selects them: V0_10 (≤ v0.10.0) and V0_14 (v0.10.1 to v0.14).
//
// Where the fake cannot be exact it says so: Python's and pydantic's own
// error texts (a JSON syntax error, a field of the wrong type) are
// approximations, set reprs are sorted, and only safetensors weights are
// read (a .bin or .pt adapter is refused). Clients must key on the status
// and the ErrorResponse type, as vLLM's own tests do, never on those texts.
package fakevllm

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Generation is a range of vLLM releases that answer alike.
type Generation int

const (
	// Latest is vLLM ≥ v0.18 as read at 9aaf83ef5: nested ErrorResponse,
	// an adapter the engine refuses is a 500 InternalServerError, and
	// load_inplace is supported (the "already been loaded" answer says so).
	Latest Generation = iota
	// V0_14 is vLLM v0.10.1 to v0.14: nested ErrorResponse, engine
	// refusals are 400 BadRequestError, no load_inplace (the field is
	// ignored).
	V0_14
	// V0_10 is vLLM ≤ v0.10.0: the flat ErrorResponse
	// {"object":"error",...}, engine refusals 400, no load_inplace, and the
	// older bias message.
	V0_10
)

// Module is a LoRA-capable module of the base model: the input and output
// sizes of its GPU slots (lora_a_stacked [max_lora_rank, In], lora_b_stacked
// [Out, max_lora_rank]).
type Module struct{ In, Out int64 }

// Base describes the served base model.
type Base struct {
	// Model is `vllm serve`'s model argument, as given (a Hub ID or a
	// path): the root of the base model's card and the base_model_name
	// resolvers receive.
	Model string
	// Served are the --served-model-name values (default: Model).
	Served      []string
	MaxModelLen int
	// Modules are the supported LoRA modules by name suffix (q_proj,
	// qkv, ...), with their sizes; nil skips the expected-module and
	// shape checks.
	Modules map[string]Module
	// Vocab is the vocabulary size embedding LoRAs must match (0: not
	// checked).
	Vocab int64
}

// Options configures a Server.
type Options struct {
	Base       Base
	Generation Generation
	// RuntimeUpdating is VLLM_ALLOW_RUNTIME_LORA_UPDATING: without it the
	// load and unload routes do not exist and no resolver runs.
	RuntimeUpdating bool
	// APIKey is --api-key: every /v1, /v2 and /inference request needs
	// "Authorization: Bearer <key>".
	APIKey string
	// MaxLoRARank is --max-lora-rank (default 16).
	MaxLoRARank int
	// NoLoRA is a server started without --enable-lora.
	NoLoRA bool
	// Resolver, if set, is a LoRA resolver plugin: asked for a model name
	// no request loaded yet, it returns the adapter's path (ok false: not
	// found). It runs only with RuntimeUpdating, as in vLLM.
	Resolver func(baseModel, name string) (path string, ok bool)
}

// Server is a fake vLLM; it is an http.Handler. Its methods are safe for
// concurrent use.
type Server struct {
	o Options

	mu      sync.Mutex
	loras   []*lora // the API server's lora_requests, in insertion order
	counter int64   // lora_id_counter: ids are never reused
	down    bool    // answer 503 as a proxy in front of a starting vLLM
	dead    bool    // the engine died (a failed reload): every call fails
	calls   []string
	lists   int
}

// lora is a registered adapter: a LoRARequest in lora_requests.
type lora struct {
	name, path string
	id         int64
	inplace    bool // load_inplace was set: vLLM keeps the flag and reloads from path on every step
	garbage    bool // a module smaller than the base's was copied into a corner of its slot
	stale      bool // loaded in place over other weights: the prefix cache (keyed by name) is stale
}

// New returns a fake vLLM serving o.Base.
func New(o Options) *Server {
	if len(o.Base.Served) == 0 {
		o.Base.Served = []string{o.Base.Model}
	}
	if o.MaxLoRARank <= 0 {
		o.MaxLoRARank = 16
	}
	if o.Base.MaxModelLen <= 0 {
		o.Base.MaxModelLen = 2048
	}
	return &Server{o: o}
}

// SetDown makes every request answer 503 from a proxy (vLLM starting).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// Restart forgets every adapter, as a restarted vLLM does.
func (s *Server) Restart() {
	s.mu.Lock()
	s.loras, s.counter, s.dead = nil, 0, false
	s.mu.Unlock()
}

// Preload registers name as loaded from path, as --lora-modules or an
// earlier client did, without checking it.
func (s *Server) Preload(name, path string) {
	s.mu.Lock()
	s.counter++
	s.loras = append(s.loras, &lora{name: name, path: path, id: s.counter})
	s.mu.Unlock()
}

// Adapter is a loaded adapter, as the fake records it.
type Adapter struct {
	Path    string
	ID      int64
	InPlace bool // loaded with load_inplace (the sticky flag)
	Garbage bool // accepted although a module is smaller than the base's
	Stale   bool // replaced in place: prefix-cache entries of the old weights may be served
}

// Loaded returns the adapter registered as name.
func (s *Server) Loaded(name string) (Adapter, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.find(name)
	if l == nil {
		return Adapter{}, false
	}
	return Adapter{Path: l.path, ID: l.id, InPlace: l.inplace, Garbage: l.garbage, Stale: l.stale}, true
}

// Calls lists the load and unload requests that reached the routes, in
// order: "load NAME", "load NAME inplace" or "unload NAME".
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Lists counts GET /v1/models requests.
func (s *Server) Lists() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lists
}

// Dead reports whether the engine died.
func (s *Server) Dead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

func (s *Server) find(name string) *lora {
	for _, l := range s.loras {
		if l.name == name {
			return l
		}
	}
	return nil
}

// ServeHTTP answers as vLLM does. Requests are served one at a time; vLLM
// serialises those naming the same adapter (lora_resolver_lock).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method == http.MethodGet && r.URL.Path == "/v1/models" {
		s.lists++
	}
	if s.down {
		http.Error(w, "upstream connect error or disconnect/reset before headers", http.StatusServiceUnavailable)
		return
	}
	if !s.authorized(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "Unauthorized"})
		return
	}
	if s.dead {
		s.fail(w, http.StatusInternalServerError, "InternalServerError", "EngineCore encountered an issue. See stack trace (above) for the root cause.", nil)
		return
	}
	route, ok := s.route(r.URL.Path)
	switch {
	case !ok:
		writeJSON(w, http.StatusNotFound, map[string]string{"detail": "Not Found"})
	case r.Method != route.method:
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"detail": "Method Not Allowed"})
	case route.method == http.MethodPost && !s.jsonBody(w, r):
	default:
		route.serve(w, r)
	}
}

type route struct {
	method string
	serve  func(http.ResponseWriter, *http.Request)
}

// route returns the route registered at path; the LoRA routes exist only
// with runtime updating (api_router.attach_router returns early).
func (s *Server) route(path string) (route, bool) {
	switch path {
	case "/health":
		return route{http.MethodGet, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }}, true
	case "/v1/models":
		return route{http.MethodGet, s.models}, true
	case "/v1/completions", "/v1/chat/completions":
		return route{http.MethodPost, s.complete}, true
	case "/v1/load_lora_adapter":
		return route{http.MethodPost, s.load}, s.o.RuntimeUpdating
	case "/v1/unload_lora_adapter":
		return route{http.MethodPost, s.unload}, s.o.RuntimeUpdating
	}
	return route{}, false
}

// authorized applies AuthenticationMiddleware: OPTIONS and paths outside
// /v1, /v2 and /inference pass; the rest need the bearer token (the
// scheme in any case). It runs before routing, so a missing route answers
// 401 to a request without the token.
func (s *Server) authorized(r *http.Request) bool {
	if s.o.APIKey == "" || r.Method == http.MethodOptions {
		return true
	}
	guarded := false
	for _, p := range []string{"/v1", "/v2", "/inference"} {
		if r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/") {
			guarded = true
		}
	}
	if !guarded {
		return true
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.EqualFold(scheme, "bearer") && token == s.o.APIKey
}

// jsonBody applies validate_json_request: the media type must be
// application/json, else a 400 (a 415 before v0.9, not modelled).
func (s *Server) jsonBody(w http.ResponseWriter, r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		s.invalid(w, "Unsupported Media Type: Only 'application/json' is allowed")
		return false
	}
	return true
}

// invalid answers a request validation error (RequestValidationError):
// 400 "Bad Request" (BadRequestError in V0_10).
func (s *Server) invalid(w http.ResponseWriter, msg string) {
	typ := "Bad Request"
	if s.o.Generation == V0_10 {
		typ = "BadRequestError"
	}
	s.fail(w, http.StatusBadRequest, typ, msg, nil)
}

// errorInfo is ErrorInfo; its field order is vLLM's.
type errorInfo struct {
	Object  string  `json:"object,omitempty"` // V0_10's flat shape only
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    int     `json:"code"`
}

// fail writes an ErrorResponse in the generation's shape, with the HTTP
// status in its code.
func (s *Server) fail(w http.ResponseWriter, status int, typ, msg string, param *string) {
	info := errorInfo{Message: msg, Type: typ, Param: param, Code: status}
	if s.o.Generation == V0_10 {
		info.Object = "error"
		writeJSON(w, status, info)
		return
	}
	writeJSON(w, status, struct {
		Error errorInfo `json:"error"`
	}{info})
}

// writeJSON writes v as Starlette's JSONResponse does: compact, non-ASCII
// and <>& as they are, no trailing newline.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(strings.TrimSuffix(b.String(), "\n")))
}

// writeText writes a bare Starlette Response: no Content-Type at all.
func writeText(w http.ResponseWriter, text string) {
	w.Header()["Content-Type"] = nil // no sniffing either
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(text))
}

// modelCard is ModelCard, with vLLM's field order.
type modelCard struct {
	ID          string       `json:"id"`
	Object      string       `json:"object"`
	Created     int64        `json:"created"`
	OwnedBy     string       `json:"owned_by"`
	Root        *string      `json:"root"`
	Parent      *string      `json:"parent"`
	MaxModelLen *int         `json:"max_model_len"`
	Permission  []permission `json:"permission"`
}

type permission struct {
	ID                 string  `json:"id"`
	Object             string  `json:"object"`
	Created            int64   `json:"created"`
	AllowCreateEngine  bool    `json:"allow_create_engine"`
	AllowSampling      bool    `json:"allow_sampling"`
	AllowLogprobs      bool    `json:"allow_logprobs"`
	AllowSearchIndices bool    `json:"allow_search_indices"`
	AllowView          bool    `json:"allow_view"`
	AllowFineTuning    bool    `json:"allow_fine_tuning"`
	Organization       string  `json:"organization"`
	Group              *string `json:"group"`
	IsBlocking         bool    `json:"is_blocking"`
}

// models answers GET /v1/models: a card per served name (root the model
// argument, parent null), then one per adapter in registration order
// (root the lora_path as sent, parent the first served name).
func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	now := time.Now().Unix()
	card := func(id, root string, parent *string, maxLen *int) modelCard {
		perm := permission{ID: fmt.Sprintf("modelperm-%x", time.Now().UnixNano()), Object: "model_permission", Created: now,
			AllowSampling: true, AllowLogprobs: true, AllowView: true, Organization: "*"}
		return modelCard{ID: id, Object: "model", Created: now, OwnedBy: "vllm", Root: &root, Parent: parent,
			MaxModelLen: maxLen, Permission: []permission{perm}}
	}
	data := []modelCard{}
	for _, name := range s.o.Base.Served {
		data = append(data, card(name, s.o.Base.Model, nil, &s.o.Base.MaxModelLen))
	}
	parent := s.o.Base.Served[0]
	for _, l := range s.loras {
		data = append(data, card(l.name, l.path, &parent, nil))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}
