package fakevllm

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fixture = "../../../compress/testdata/peft/python-lora-r16"

var tiny = Base{Model: "gpt2-tiny", MaxModelLen: 1024, Modules: map[string]Module{
	"qkv": {In: 384, Out: 1152}, "proj": {In: 384, Out: 384}, "fc1": {In: 384, Out: 1536}, "fc2": {In: 1536, Out: 384},
}}

// adapter copies the fixture LoRA into a new directory, extra (JSON
// members, "" for none) last in its config: they win over the fixture's,
// in Python's json as in Go's.
func adapter(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(fixture, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "adapter_config.json" && extra != "" {
			i := bytes.LastIndexByte(b, '}')
			b = append(b[:i:i], []byte(","+extra+"}")...)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type answer struct {
	status int
	ctype  string
	body   string
}

func do(t *testing.T, h http.Handler, method, path, ctype, body string, hdr ...string) answer {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return answer{w.Code, w.Result().Header.Get("Content-Type"), string(b)}
}

func (a answer) is(t *testing.T, what string, status int, body string) {
	t.Helper()
	if a.status != status || a.body != body {
		t.Errorf("%s: %d %s\nwant %d %s", what, a.status, a.body, status, body)
	}
}

// TestWire checks the fake's answers byte for byte against vLLM's, as read
// at 9aaf83ef5 (see the package doc for the files).
func TestWire(t *testing.T) {
	const js = "application/json"
	off := New(Options{Base: tiny})
	do(t, off, "POST", "/v1/load_lora_adapter", js, `{"lora_name":"a","lora_path":"/a"}`).is(t, "routes off", 404, `{"detail":"Not Found"}`)
	do(t, off, "GET", "/v1/unload_lora_adapter", "", "").is(t, "routes off, GET", 404, `{"detail":"Not Found"}`)

	keyed := New(Options{Base: tiny, APIKey: "k"})
	do(t, keyed, "POST", "/v1/load_lora_adapter", js, `{}`).is(t, "no token, before routing", 401, `{"error":"Unauthorized"}`)
	do(t, keyed, "GET", "/v1/models", "", "", "Authorization", "Bearer wrong").is(t, "wrong token", 401, `{"error":"Unauthorized"}`)
	if a := do(t, keyed, "GET", "/v1/models", "", "", "Authorization", "bearer k"); a.status != 200 {
		t.Errorf("token with a lower-case scheme: %d %s", a.status, a.body)
	}
	if a := do(t, keyed, "GET", "/health", "", ""); a.status != 200 {
		t.Errorf("/health is not guarded: %d", a.status)
	}

	s := New(Options{Base: tiny, RuntimeUpdating: true})
	dir := adapter(t, "")
	a := do(t, s, "POST", "/v1/load_lora_adapter", js, `{"lora_name":"a","lora_path":"`+dir+`"}`)
	a.is(t, "load", 200, "Success: LoRA adapter 'a' added successfully.")
	if a.ctype != "" {
		t.Errorf("load: Content-Type %q, want none (a bare Starlette Response)", a.ctype)
	}
	do(t, s, "POST", "/v1/load_lora_adapter", js, `{"lora_name":"a","lora_path":"`+dir+`"}`).is(t, "again", 400,
		`{"error":{"message":"The lora adapter 'a' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True.","type":"InvalidUserInput","param":null,"code":400}}`)
	do(t, s, "POST", "/v1/load_lora_adapter", js, `{"lora_name":"a","lora_path":"`+dir+`","load_inplace":true}`).is(t, "in place", 200, "Success: LoRA adapter 'a' added successfully.")
	if l, _ := s.Loaded("a"); l.ID != 1 || !l.InPlace || !l.Stale {
		t.Errorf("in place: %+v, want id 1 kept, sticky, stale", l)
	}
	do(t, s, "POST", "/v1/load_lora_adapter", js, `{"lora_name":"","lora_path":"/x"}`).is(t, "empty name", 400,
		`{"error":{"message":"Both 'lora_name' and 'lora_path' must be provided.","type":"InvalidUserInput","param":null,"code":400}}`)
	do(t, s, "POST", "/v1/load_lora_adapter", js, `{"lora_name":"b","lora_path":"/not/an/adapter"}`).is(t, "missing dir", 404,
		`{"error":{"message":"Loading lora b failed: No adapter found for /not/an/adapter","type":"NotFoundError","param":null,"code":404}}`)
	do(t, s, "POST", "/v1/load_lora_adapter", js, `{"lora_name":"b","lora_path":"`+adapter(t, `"use_dora": true, "r": 32`)+`"}`).is(t, "validate_legal", 500,
		`{"error":{"message":"Call to add_lora method failed: vLLM does not yet support DoRA. LoRA rank 32 is greater than max_lora_rank 16.","type":"InternalServerError","param":null,"code":500}}`)
	if a := do(t, s, "POST", "/v1/load_lora_adapter", "text/plain", `{}`); a.status != 400 || !strings.Contains(a.body, `Unsupported Media Type: Only 'application/json' is allowed","type":"Bad Request"`) {
		t.Errorf("content type: %d %s", a.status, a.body)
	}
	if a := do(t, s, "GET", "/v1/load_lora_adapter", "", ""); a.status != 405 || a.body != `{"detail":"Method Not Allowed"}` {
		t.Errorf("GET load: %d %s", a.status, a.body)
	}
	do(t, s, "POST", "/v1/unload_lora_adapter", js, `{"lora_name":"x"}`).is(t, "unknown unload", 404,
		`{"error":{"message":"The lora adapter 'x' cannot be found.","type":"NotFoundError","param":null,"code":404}}`)
	do(t, s, "POST", "/v1/completions", js, `{"model":"nope","prompt":"hi"}`).is(t, "unknown model", 404,
		"{\"error\":{\"message\":\"The model `nope` does not exist.\",\"type\":\"NotFoundError\",\"param\":\"model\",\"code\":404}}")
	if a := do(t, s, "GET", "/v1/models", "", ""); a.status != 200 ||
		!strings.Contains(a.body, `{"id":"gpt2-tiny","object":"model","created":`) ||
		!strings.Contains(a.body, `"owned_by":"vllm","root":"gpt2-tiny","parent":null,"max_model_len":1024,"permission":[{"id":"modelperm-`) ||
		!strings.Contains(a.body, `{"id":"a","object":"model",`) ||
		!strings.Contains(a.body, `"root":"`+dir+`","parent":"gpt2-tiny","max_model_len":null,`) {
		t.Errorf("models: %s", a.body)
	}
	do(t, s, "POST", "/v1/unload_lora_adapter", js, `{"lora_name":"a"}`).is(t, "unload", 200, "Success: LoRA adapter 'a' removed successfully.")

	old := New(Options{Base: tiny, RuntimeUpdating: true, Generation: V0_10})
	do(t, old, "POST", "/v1/load_lora_adapter", js, `{"lora_name":"b","lora_path":"`+adapter(t, `"bias": "all"`)+`"}`).is(t, "v0.10 refusal", 400,
		`{"object":"error","message":"Call to add_lora method failed: Adapter bias cannot be used without bias_enabled.","type":"BadRequestError","param":null,"code":400}`)
}

// TestEngineChecks: what the engine refuses when it loads an adapter, and
// what it takes without a word.
func TestEngineChecks(t *testing.T) {
	s := New(Options{Base: tiny})
	small := New(Options{Base: Base{Model: "small", Modules: map[string]Module{
		"qkv": {In: 256, Out: 768}, "proj": {In: 256, Out: 256}, "fc1": {In: 256, Out: 1024}, "fc2": {In: 1024, Out: 256}}}})
	large := New(Options{Base: Base{Model: "large", Modules: map[string]Module{
		"qkv": {In: 768, Out: 2304}, "proj": {In: 768, Out: 768}, "fc1": {In: 768, Out: 3072}, "fc2": {In: 3072, Out: 768}}}})
	llama := New(Options{Base: Base{Model: "llama", Modules: map[string]Module{"q_proj": {In: 384, Out: 384}}}})
	ia3 := t.TempDir()
	if err := os.WriteFile(filepath.Join(ia3, "adapter_config.json"), []byte(`{"peft_type":"IA3","target_modules":["qkv"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		s    *Server
		dir  string
		want string // "" loads
	}{
		{"fits", s, adapter(t, ""), ""},
		{"smaller base", small, adapter(t, ""), "The size of tensor a (256) must match the size of tensor b (384) at non-singleton dimension 1"},
		{"other modules", llama, adapter(t, ""), "While loading "},
		{"ia3", s, ia3, "Missing required configuration fields: {'lora_alpha', 'r'}"},
		{"r zero", s, adapter(t, `"r": 0`), "division by zero"},
		{"modules_to_save", s, adapter(t, `"modules_to_save": ["score"]`), "vLLM only supports modules_to_save being None."},
		{"bias", s, adapter(t, `"bias": "lora_only"`), "Adapter bias is not supported."},
		{"no weights", s, filepath.Dir(filepath.Join(ia3, "x")), "Missing required"},
	} {
		err := c.s.Check(c.dir)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// A base with larger modules takes the adapter, which then computes garbage.
	fake := New(Options{Base: large.o.Base, RuntimeUpdating: true})
	do(t, fake, "POST", "/v1/load_lora_adapter", "application/json", `{"lora_name":"a","lora_path":"`+adapter(t, "")+`"}`).is(t, "larger base", 200, "Success: LoRA adapter 'a' added successfully.")
	if a, _ := fake.Loaded("a"); !a.Garbage {
		t.Errorf("larger base: %+v, want Garbage", a)
	}
}

// TestResolverHook: with runtime updating, a request naming an unknown
// model asks the resolver (with `vllm serve`'s model argument); a path the
// engine refuses is the 400 "found but could not be loaded".
func TestResolverHook(t *testing.T) {
	good, bad := adapter(t, ""), adapter(t, `"use_dora": true`)
	var asked []string
	s := New(Options{Base: tiny, RuntimeUpdating: true, Resolver: func(base, name string) (string, bool) {
		asked = append(asked, base+" "+name)
		switch name {
		case "good":
			return good, true
		case "bad":
			return bad, true
		}
		return "", false
	}})
	const js = "application/json"
	if a := do(t, s, "POST", "/v1/completions", js, `{"model":"good","prompt":"x"}`); a.status != 200 {
		t.Errorf("resolved: %d %s", a.status, a.body)
	}
	if l, ok := s.Loaded("good"); !ok || l.Path != good {
		t.Errorf("resolved adapter %+v %v", l, ok)
	}
	do(t, s, "POST", "/v1/chat/completions", js, `{"model":"bad"}`).is(t, "refused", 400,
		`{"error":{"message":"LoRA adapter 'bad' was found but could not be loaded.","type":"BadRequestError","param":null,"code":400}}`)
	do(t, s, "POST", "/v1/completions", js, `{"model":"nope"}`).is(t, "not found", 404,
		"{\"error\":{\"message\":\"The model `nope` does not exist.\",\"type\":\"NotFoundError\",\"param\":\"model\",\"code\":404}}")
	do(t, s, "POST", "/v1/completions", js, `{"model":"good"}`) // known now: no resolver call
	if want := []string{"gpt2-tiny good", "gpt2-tiny bad", "gpt2-tiny nope"}; strings.Join(asked, ",") != strings.Join(want, ",") {
		t.Errorf("resolver asked %v, want %v", asked, want)
	}
}
