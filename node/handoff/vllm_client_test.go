package handoff

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// FuzzParseModels feeds parseModels any body: a model list or an error,
// never a panic.
func FuzzParseModels(f *testing.F) {
	f.Add([]byte(`{"object":"list","data":[{"id":"base","parent":null},{"id":"python","parent":"base"}]}`))
	f.Add([]byte(`{"data":null}`))
	f.Add([]byte(`{"detail":"Not Found"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ids, err := parseModels(body)
		if err == nil && ids == nil {
			t.Fatal("no error and no list")
		}
	})
}

func TestModelsList(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		status     int
		want       []string
		wantErr    bool
	}{
		{name: "vllm", status: 200, body: `{"object":"list","data":[{"id":"base","object":"model","root":"/m","parent":null},{"id":"python","root":"/a/python","parent":"base"}]}`, want: []string{"base", "python"}},
		{name: "empty", status: 200, body: `{"object":"list","data":[]}`, want: []string{}},
		{name: "not a list", status: 200, body: `{"detail":"Not Found"}`, wantErr: true},
		{name: "html", status: 200, body: `<html>proxy</html>`, wantErr: true},
		{name: "unauthorized", status: 401, body: `{"error":"Unauthorized"}`, wantErr: true},
		{name: "starting", status: 503, body: `upstream connect error`, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != modelsPath || r.Header.Get("Authorization") != "Bearer k" {
					t.Errorf("request %s %s %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c, err := newVLLMClient(srv.URL+"/v1", "k", srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			ids, err := c.models(context.Background())
			if tt.wantErr {
				if err == nil {
					t.Fatalf("models = %v, want an error", ids)
				}
				return
			}
			if err != nil || len(ids) != len(tt.want) {
				t.Fatalf("models = %v, %v; want %v", ids, err, tt.want)
			}
			for _, id := range tt.want {
				if _, ok := ids[id]; !ok {
					t.Errorf("%s missing from %v", id, ids)
				}
			}
		})
	}
}

func TestClassify(t *testing.T) {
	flat := func(code int, typ, msg string) string {
		return `{"object":"error","message":"` + msg + `","type":"` + typ + `","param":null,"code":` + strconv.Itoa(code) + `}`
	}
	nested := func(code int, typ, msg string) string {
		return `{"error":{"message":"` + msg + `","type":"` + typ + `","param":null,"code":` + strconv.Itoa(code) + `}}`
	}
	for _, c := range []struct {
		route  string
		status int
		body   string
		want   outcome
		is     error
	}{
		{loadPath, 200, "Success: LoRA adapter 'x' added successfully.", done, nil},
		{unloadPath, 200, "Success: LoRA adapter 'x' removed successfully.", done, nil},
		{loadPath, 400, flat(400, "InvalidUserInput", "The lora adapter 'x' has already been loaded."), already, nil},
		{loadPath, 400, nested(400, "InvalidUserInput", "The lora adapter 'x' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True."), already, nil},
		{loadPath, 500, nested(500, "InternalServerError", "Call to add_lora method failed: Server shutting down"), unavailable, ErrUnavailable},
		{unloadPath, 404, flat(404, "NotFoundError", "The lora adapter 'x' cannot be found."), done, nil},
		{unloadPath, 404, nested(404, "NotFoundError", "The lora adapter 'x' cannot be found."), done, nil},
		{unloadPath, 400, flat(400, "BadRequestError", "LoRA adapter x not found"), done, nil},
		{unloadPath, 404, `{"detail":"Not Found"}`, failed, ErrVLLM}, // no such route
		{loadPath, 404, `{"detail":"Not Found"}`, failed, ErrVLLM},
		{loadPath, 404, nested(404, "NotFoundError", "Loading lora x failed: No adapter found for /a/x"), failed, ErrVLLM},
		{loadPath, 400, flat(400, "BadRequestError", "bad rank"), failed, ErrVLLM},
		{loadPath, 500, nested(500, "InternalServerError", "target modules not supported"), failed, ErrVLLM},
		{loadPath, 401, `{"error":"Unauthorized"}`, failed, ErrVLLM},
		{loadPath, 415, `{"detail":"Unsupported Media Type"}`, failed, ErrVLLM},
		{loadPath, 500, "Internal Server Error", unavailable, ErrUnavailable},
		{loadPath, 502, "bad gateway", unavailable, ErrUnavailable},
		{loadPath, 503, nested(503, "ServiceUnavailableError", "sleeping"), unavailable, ErrUnavailable},
		{unloadPath, 504, "", unavailable, ErrUnavailable},
		{loadPath, 429, "", unavailable, ErrUnavailable},
	} {
		got, _, err := classify(c.route, c.status, []byte(c.body))
		if got != c.want || (c.is == nil) != (err == nil) || (c.is != nil && !errors.Is(err, c.is)) {
			t.Errorf("classify(%s, %d, %s) = %v, %v; want %v, %v", c.route, c.status, c.body, got, err, c.want, c.is)
		}
	}
}

func TestVLLMURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8000":     "http://127.0.0.1:8000",
		"http://127.0.0.1:8000/":    "http://127.0.0.1:8000",
		"http://127.0.0.1:8000/v1":  "http://127.0.0.1:8000",
		"https://gpu:8443/vllm/v1/": "https://gpu:8443/vllm",
	} {
		c, err := newVLLMClient(in, "", http.DefaultClient)
		if err != nil || c.base != want {
			t.Errorf("newVLLMClient(%q) base %v, %v; want %s", in, c, err, want)
		}
	}
	for _, in := range []string{"127.0.0.1:8000", "ftp://x", "http://", ":"} {
		if _, err := newVLLMClient(in, "", http.DefaultClient); err == nil {
			t.Errorf("newVLLMClient(%q) accepted", in)
		}
	}
}
