package handoff

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expertd/expertd/compress"
)

// Options configures a Handoff.
type Options struct {
	// Dir is inference.adapters_dir, the directory adapters are written to
	// (created if missing); "" turns hand-off off. Relative paths are made
	// absolute: vLLM is given absolute lora_path values.
	Dir string
	// Policy decides which experts are written and handed to the server.
	Policy Policy
	// ServerDir is Dir as the inference server sees it (its mount of the
	// same directory in another container, say); "" means Dir. The paths
	// sent to vLLM as lora_path and returned by Placed are under it.
	ServerDir string
	// Grace is how long a version directory stays after no adapter name
	// points at it any more (the server may still read it for requests
	// under way); default DefaultGrace.
	Grace time.Duration
	// DType of the written weights: "source" (or "") keeps the dtype each
	// tensor had when published; f32, f16 or bf16 convert.
	DType string
	// MaxOutput bounds the bytes one adapter may expand to
	// (store.max_output_size), as compress.ExpandOptions.MaxOutput takes
	// it: 0 means compress.DefaultMaxOutput, a negative value no limit.
	MaxOutput int64
	// VLLMURL is vLLM's base URL, e.g. http://127.0.0.1:8000 (a trailing
	// /v1 is accepted); "" makes no vLLM calls.
	VLLMURL string
	// VLLMAPIKey, if set, is sent as "Authorization: Bearer" (vllm serve
	// --api-key).
	VLLMAPIKey string
	// Client makes the vLLM calls (default: a client with a 2-minute timeout).
	Client *http.Client
	Logger *slog.Logger
	// Backoff is the first wait after vLLM did not answer, doubled after each
	// further failure up to MaxBackoff (defaults 1s and 1m).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Check is how often Serve asks vLLM which adapters it holds
	// (GET /v1/models) and loads again those it acknowledged but no longer
	// lists: vLLM forgets runtime-loaded adapters when it restarts. 0: never.
	Check time.Duration
}

// Defaults of Options.
const (
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = time.Minute
	DefaultGrace      = 10 * time.Minute
	defaultTimeout    = 2 * time.Minute
)

// Handoff materializes experts into an adapters directory and keeps vLLM's
// loaded adapters in step with it. Its methods are safe for concurrent use.
type Handoff struct {
	dir         string
	serverDir   string // dir as the server sees it
	policy      Policy
	grace       time.Duration
	dtype       string // compress.ParseDType form: "" for source
	maxOutput   int64  // compress.ExpandOptions.MaxOutput
	vllm        *vllmClient
	log         *slog.Logger
	backoff     time.Duration
	maxBackoff  time.Duration
	check       time.Duration // 0: never
	checkWarned bool          // a check failure was warned of; Serve's goroutine only

	locks   nameLocks
	fsMu    sync.Mutex    // held while a version is written and linked, and by the janitor
	wake    chan struct{} // buffered 1: something became due
	started atomic.Bool

	mu        sync.Mutex
	adapters  map[string]*adapter // by sanitized name
	seq       uint64              // orders due calls first come, first served
	fails     int                 // consecutive calls vLLM did not answer
	notBefore time.Time           // no call before this (backoff)
	stats     Stats
	refused   map[string]refusal // by CID: experts not handed off, and why
}

// adapter is what the Handoff knows of one name. Guarded by Handoff.mu.
type adapter struct {
	name     string // sanitized
	expert   string // the expert's own name
	cid      string
	dir      string // the name's link; "" once removed
	version  string // the version directory it points at
	server   string // lora_path: the version directory as the server sees it
	peftType string
	line     Version // the expert's place in its line, if any
	note     string  // why it is not sent to vLLM, if it is not
	replace  bool    // the due load replaces what vLLM holds under the name (load_inplace)

	loaded     bool   // vLLM acknowledged a load and no unload since
	needUnload bool   // an unload is due (before any load)
	needLoad   bool   // a load is due
	gen        uint64 // bumped when the wanted state changes under a call
	seq        uint64 // when the due call was queued
	attempts   int    // calls made for the current operation
	lastErr    string
	failed     bool // the last operation failed for good
}

// New validates o and prepares the adapters directory: it is created if
// missing, and temporary directories left by an interrupted run are
// removed. With o.Dir empty the Handoff is off: Materialize and Remove
// return ErrDisabled and Serve just waits.
func New(o Options) (*Handoff, error) {
	dtype, err := compress.ParseDType(o.DType)
	if err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	h := &Handoff{
		policy:     o.Policy,
		grace:      o.Grace,
		dtype:      dtype,
		maxOutput:  o.MaxOutput,
		log:        o.Logger,
		backoff:    o.Backoff,
		maxBackoff: o.MaxBackoff,
		check:      max(o.Check, 0),
		wake:       make(chan struct{}, 1),
		adapters:   map[string]*adapter{},
		refused:    map[string]refusal{},
	}
	if h.grace <= 0 {
		h.grace = DefaultGrace
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.backoff <= 0 {
		h.backoff = DefaultBackoff
	}
	if h.maxBackoff <= 0 {
		h.maxBackoff = DefaultMaxBackoff
	}
	if h.maxBackoff < h.backoff {
		return nil, fmt.Errorf("handoff: max backoff %v is below the backoff %v", h.maxBackoff, h.backoff)
	}
	if o.VLLMURL != "" {
		hc := o.Client
		if hc == nil {
			hc = &http.Client{Timeout: defaultTimeout}
		}
		if h.vllm, err = newVLLMClient(o.VLLMURL, o.VLLMAPIKey, hc); err != nil {
			return nil, err
		}
	}
	if o.Dir == "" {
		return h, nil
	}
	if h.dir, err = filepath.Abs(o.Dir); err != nil {
		return nil, fmt.Errorf("handoff: adapters dir: %w", err)
	}
	h.serverDir = h.dir
	if o.ServerDir != "" {
		if !filepath.IsAbs(o.ServerDir) {
			return nil, fmt.Errorf("handoff: server adapters dir %q is not an absolute path", o.ServerDir)
		}
		h.serverDir = filepath.Clean(o.ServerDir)
	}
	if err := os.MkdirAll(filepath.Join(h.dir, VersionsDir), 0o755); err != nil {
		return nil, fmt.Errorf("handoff: adapters dir: %w", err)
	}
	if err := h.sweep(); err != nil {
		return nil, err
	}
	if err := h.migrate(); err != nil {
		return nil, err
	}
	h.janitor(time.Now())
	return h, nil
}

// Dir returns the absolute adapters directory, "" when hand-off is off.
func (h *Handoff) Dir() string { return h.dir }

// Policy returns the policy the Handoff applies.
func (h *Handoff) Policy() Policy { return h.policy }

// sweep removes the temporary directories and links of an interrupted run.
func (h *Handoff) sweep() error {
	ents, err := os.ReadDir(h.dir)
	if err != nil {
		return fmt.Errorf("handoff: adapters dir: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			if err := os.RemoveAll(filepath.Join(h.dir, e.Name())); err != nil {
				return fmt.Errorf("handoff: removing leftover %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

// signal wakes Serve without blocking.
func (h *Handoff) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}
