package handoff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// vLLM's runtime LoRA routes (docs/features/lora.md, "Using API Endpoints").
const (
	loadPath   = "/v1/load_lora_adapter"
	unloadPath = "/v1/unload_lora_adapter"
	modelsPath = "/v1/models" // the OpenAI model list: base models and loaded adapters
	maxBody    = 64 << 10     // of a vLLM answer, read for its error message
	maxModels  = 8 << 20      // of a model list (~200 bytes an adapter)
)

// vllmClient calls vLLM's load and unload routes and lists its models.
type vllmClient struct {
	base string // scheme://host[:port][/prefix], no trailing slash or /v1
	key  string
	hc   *http.Client
}

func newVLLMClient(raw, key string, hc *http.Client) (*vllmClient, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("handoff: vLLM URL %q: want http(s)://host:port", raw)
	}
	base := strings.TrimSuffix(strings.TrimRight(u.String(), "/"), "/v1")
	return &vllmClient{base: base, key: key, hc: hc}, nil
}

// outcome classifies vLLM's answer to a call.
type outcome int

const (
	done        outcome = iota // the wanted state holds
	failed                     // refused; retrying will not help
	unavailable                // no usable answer; retry later
	// already: a load answered that vLLM holds an adapter of that name
	// (which one is for the caller to find out: see Handoff.already).
	already
	// reload: vLLM holds another adapter under the name and cannot
	// replace it in place; unload it, then load.
	reload
)

// inplaceHint is in vLLM's "already been loaded" answer when it supports
// load_inplace (≈v0.15 on, vllm PR #31326); older releases ignore the field.
const inplaceHint = "load_inplace"

// load asks vLLM to load the adapter directory path as name; inplace
// replaces an adapter vLLM holds under that name (load_inplace), keeping
// its lora_int_id and the name served throughout.
func (c *vllmClient) load(ctx context.Context, name, path string, inplace bool) (outcome, string, error) {
	body := map[string]any{"lora_name": name, "lora_path": path}
	if inplace {
		body["load_inplace"] = true
	}
	return c.call(ctx, loadPath, body)
}

// unload asks vLLM to drop the adapter name.
func (c *vllmClient) unload(ctx context.Context, name string) (outcome, string, error) {
	return c.call(ctx, unloadPath, map[string]any{"lora_name": name})
}

// models returns the models vLLM lists at /v1/models, by ID: its served
// models and the LoRA adapters it holds (by lora_name), each with its
// card's root: for an adapter, the lora_path it was loaded from, as sent
// (vllm/entrypoints/openai/models/serving.py, show_available_models).
func (c *vllmClient) models(ctx context.Context) (map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+modelsPath, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrVLLM, err)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		err := ErrVLLM
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			err = ErrUnavailable // down or starting, as for the calls
		}
		return nil, fmt.Errorf("%w: %s: %d %s", err, modelsPath, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxModels+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %w", ErrUnavailable, modelsPath, err)
	}
	return parseModels(body)
}

// parseModels returns the model IDs, with their roots, in an OpenAI model
// list {"object":"list","data":[{"id":...,"root":...},...]} of at most
// maxModels bytes.
func parseModels(body []byte) (map[string]string, error) {
	if len(body) > maxModels {
		return nil, fmt.Errorf("%w: %s: answer over %d bytes", ErrVLLM, modelsPath, maxModels)
	}
	var list struct {
		Data []struct {
			ID   string `json:"id"`
			Root string `json:"root"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil || list.Data == nil {
		return nil, fmt.Errorf("%w: %s: not a model list: %.200q", ErrVLLM, modelsPath, body)
	}
	ids := make(map[string]string, len(list.Data))
	for _, m := range list.Data {
		ids[m.ID] = m.Root
	}
	return ids, nil
}

// call posts body to route and classifies the answer. On done, the string
// is vLLM's message (or why the call counts as done).
func (c *vllmClient) call(ctx context.Context, route string, body map[string]any) (outcome, string, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return failed, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+route, bytes.NewReader(b))
	if err != nil {
		return failed, "", fmt.Errorf("%w: %v", ErrVLLM, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return unavailable, "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil && resp.StatusCode/100 != 2 {
		return unavailable, "", fmt.Errorf("%w: reading the answer to %s: %w", ErrUnavailable, route, err)
	}
	return classify(route, resp.StatusCode, text)
}

// vllmError is vLLM's ErrorResponse, in its older flat shape
// {"object":"error","message",...} or its newer nested one
// {"error":{"message",...}} (vllm/entrypoints/openai/protocol.py and
// engine/protocol.py).
type vllmError struct {
	Object  string `json:"object"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    int    `json:"code"`
	Error   *struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    int    `json:"code"`
	} `json:"error"`
}

// parseVLLMError returns the message and type of a vLLM ErrorResponse, ok
// false if body is not one (a proxy's page, FastAPI's {"detail":...}).
func parseVLLMError(body []byte) (msg, typ string, ok bool) {
	var e vllmError
	if json.Unmarshal(body, &e) != nil {
		return "", "", false
	}
	if e.Error != nil && (e.Error.Message != "" || e.Error.Type != "") {
		return e.Error.Message, e.Error.Type, true
	}
	if e.Object == "error" || (e.Message != "" && e.Type != "") {
		return e.Message, e.Type, true
	}
	return "", "", false
}

// classify maps vLLM's answer to an outcome; see the package doc.
func classify(route string, status int, body []byte) (outcome, string, error) {
	text := strings.TrimSpace(string(body))
	if status/100 == 2 {
		return done, text, nil
	}
	msg, typ, isVLLM := parseVLLMError(body)
	if !isVLLM {
		msg = text
	}
	lower := strings.ToLower(msg)
	detail := fmt.Sprintf("%s: %d %s", route, status, http.StatusText(status))
	if msg != "" {
		detail += ": " + truncate(msg, 500)
	}
	switch {
	case route == loadPath && status == http.StatusBadRequest && strings.Contains(lower, "already been loaded"):
		return already, msg, nil
	case route == unloadPath && isVLLM && (status == http.StatusNotFound || status == http.StatusBadRequest) &&
		(typ == "NotFoundError" || strings.Contains(lower, "cannot be found") || strings.Contains(lower, "not found")):
		return done, "not loaded", nil
	case status == http.StatusTooManyRequests || status == http.StatusBadGateway ||
		status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
		return unavailable, "", fmt.Errorf("%w: %s", ErrUnavailable, detail)
	case status >= 500 && (!isVLLM || strings.Contains(lower, "server shutting down")):
		return unavailable, "", fmt.Errorf("%w: %s", ErrUnavailable, detail)
	case status == http.StatusNotFound && !isVLLM:
		return failed, "", fmt.Errorf("%w: %s (is the server vLLM, started with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True?)", ErrVLLM, detail)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return failed, "", fmt.Errorf("%w: %s (set the vLLM API key)", ErrVLLM, detail)
	default:
		return failed, "", fmt.Errorf("%w: %s", ErrVLLM, detail)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// errCanceled reports whether err is the caller's context ending.
func errCanceled(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}
