package api

import (
	"context"
	"errors"
	"time"

	"github.com/expertd/expertd/node/expert"
)

// Errors a Backend returns (wrapped) to choose the HTTP status.
var (
	ErrNotFound    = errors.New("not found")   // 404
	ErrBadRequest  = errors.New("bad request") // 400
	ErrConflict    = errors.New("conflict")    // 409
	ErrUnavailable = errors.New("unavailable") // 503
)

// Backend is what the API serves: the running node. Methods must be safe
// for concurrent use.
type Backend interface {
	Identity() Identity
	Peers() []Peer
	// Experts lists one page of the local experts and, with f.Remote, those
	// known from the swarm (Page.Of makes it from all of them).
	Experts(f Filter, p Page) ExpertPage
	Expert(cid string) (Expert, error)
	Publish(ctx context.Context, r PublishRequest) (Expert, error)
	// StartFetch starts (or joins) an asynchronous fetch.
	StartFetch(cid string) (Transfer, error)
	Transfer(cid string) (Transfer, error)
	// CancelFetch cancels the running fetch of cid (what it verified is
	// kept: a later fetch resumes from it) and returns the transfer as it
	// ended; a finished one is returned as it is. ErrNotFound if the node
	// knows no fetch of cid.
	CancelFetch(ctx context.Context, cid string) (Transfer, error)
	Materialize(ctx context.Context, cid string, r MaterializeRequest) (Materialized, error)
	Pin(cid string, pinned bool) error
	Remove(cid string) error
	// Merge merges the experts r.Parents into one (fetching those not
	// held), stores and pins it, and publishes it with its provenance if
	// r.Publish.
	Merge(ctx context.Context, r MergeRequest) (Expert, error)
	// Resolve fetches (if needed) and materializes the expert called name
	// (for r.BaseModel, if set) for the inference server and returns where
	// the server finds it.
	Resolve(ctx context.Context, name string, r ResolveRequest) (Materialized, error)
	// Name says what the node knows of an expert name ("name" or
	// "publisher/name"): the version it resolves to, and the versions it
	// knows. It fetches and writes nothing.
	Name(name string) (NameInfo, error)
	// Status is everything the status page shows, read in one call, with
	// one page of experts (p) and at most p.Limit of every other list.
	Status(p Page) Status
}

// Status is the node at a glance, for the status page (GET /v1/status).
// Its size is bounded whatever the node knows: every list holds at most the
// page's limit, and Counts has the full numbers.
type Status struct {
	Node  Identity `json:"node"`
	Peers []Peer   `json:"peers"`
	// Experts is one page (Page) of the local experts and those known from
	// the swarm (Local tells them apart), remote ones with their Providers.
	Experts []Expert `json:"experts"`
	// ExpertsNext is the cursor of the next page of experts ("" on the
	// last), for GET /v1/status or /v1/experts?remote=1.
	ExpertsNext string `json:"experts_next,omitempty"`
	// Transfers are the fetches the node tracks, newest first: the running
	// ones and any finished ones it still remembers.
	Transfers []Transfer `json:"transfers"`
	// Adapters are the experts handed to the inference server
	// (inference.adapters_dir) and their vLLM state.
	Adapters []Adapter `json:"adapters"`
	Counts   Counts    `json:"counts"`
}

// Counts are the lengths of the status lists before they were cut to a page.
type Counts struct {
	Peers            int `json:"peers"`
	LocalExperts     int `json:"local_experts"`
	RemoteExperts    int `json:"remote_experts"`
	Transfers        int `json:"transfers"`
	RunningTransfers int `json:"running_transfers"`
	Adapters         int `json:"adapters"`
}

// Identity is the node's peer ID and addresses.
type Identity struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
	// Reachability is what AutoNAT finds of this node: public, private
	// (behind NAT or a firewall) or unknown.
	Reachability string `json:"reachability,omitempty"`
	// Reservations are the relays this node holds a slot on: peers reach
	// it through them.
	Reservations []Reservation `json:"reservations,omitempty"`
	RelayService bool          `json:"relay_service,omitempty"` // this node is a relay (p2p.relay_service)
}

// Reservation is a slot held on a relay, and the addresses peers reach
// this node at through it.
type Reservation struct {
	Relay string   `json:"relay"`
	Addrs []string `json:"addrs,omitempty"`
}

// Peer is a connected peer.
type Peer struct {
	ID        string   `json:"id"`
	Addrs     []string `json:"addrs"`
	LatencyMS float64  `json:"latency_ms,omitempty"`
	Conns     []Conn   `json:"conns,omitempty"`
}

// Conn is one connection to a peer.
type Conn struct {
	Addr string `json:"addr"`
	Kind string `json:"kind"` // direct, relayed or hole-punched
	// Relay is a relayed connection's relay; LimitBytes and LimitSeconds
	// what it carries each way and for how long (0: no limit).
	Relay        string `json:"relay,omitempty"`
	LimitBytes   uint64 `json:"limit_bytes,omitempty"`
	LimitSeconds int64  `json:"limit_seconds,omitempty"`
}

// Filter selects experts.
type Filter struct {
	Remote    bool   // include experts only known from the swarm
	BaseModel string // exact match
	PeftType  string // case-insensitive
	Name      string // substring
}

// Expert describes an expert, local or remote. The JSON names of the
// embedded expert.Metadata are part of the API (TestExpertJSON pins them).
type Expert struct {
	CID string `json:"cid"`
	expert.Metadata
	Publisher string `json:"publisher,omitempty"`
	// Version is the expert's place in its publisher's line of versions of
	// its name (docs/names.md): 1, 2, ...; 0 (omitted) for none.
	Version uint64    `json:"version,omitempty"`
	Added   time.Time `json:"added,omitzero"`
	Local   bool      `json:"local"`
	Signed  bool      `json:"signed"`  // metadata signed by the publisher
	Trusted bool      `json:"trusted"` // per trust.publishers`
	Pinned  bool      `json:"pinned"`
	// NotHandedOff says why the expert is not handed to the inference
	// server (inference.adapters_dir), nil when it is or may be.
	NotHandedOff *Refusal `json:"not_handed_off,omitempty"`
	Providers    []string `json:"providers,omitempty"`
	// ProviderCount counts all providers; in a list Providers holds at
	// most MaxListedProviders of them.
	ProviderCount int `json:"provider_count,omitempty"`
	// Merge is how the expert was made by merging others, as its
	// publisher signed it (verified); nil for an expert that is not a
	// signed merge.
	Merge *Merge `json:"merge,omitempty"`
}

// Merge is a merged expert's provenance.
type Merge struct {
	Method string `json:"method"` // ta, ties
	// Parents are the merged experts' CIDs, in the order merged; "" for a
	// parent that had no CID (an adapter directory).
	Parents []string `json:"parents"`
}

// MergeRequest merges experts of one base, PEFT type and set of target
// modules into one (POST /v1/merge); zero values select the defaults of
// `expertd merge`.
type MergeRequest struct {
	Parents []string  `json:"parents"`           // CIDs, 2 to 64
	Method  string    `json:"method,omitempty"`  // ta (default) or ties
	Weights []float64 `json:"weights,omitempty"` // one per parent (default all 1)
	Lambda  float64   `json:"lambda,omitempty"`
	Density float64   `json:"density,omitempty"` // of the merged container (default 0.2)
	Rank    int       `json:"rank,omitempty"`    // of a merged LoRA (default: the sum of the parents')
	Trim    float64   `json:"trim,omitempty"`    // ties
	// Refit compresses a merged LoRA with the refit; nil: the default (on).
	Refit *bool  `json:"refit,omitempty"`
	Name  string `json:"name,omitempty"` // default: the parents' names joined by "+"
	// Publish signs the merged expert's publication, its provenance
	// included, and announces it; otherwise it is only stored and pinned.
	Publish bool `json:"publish,omitempty"`
}

// PublishRequest publishes an adapter directory (compressed with the
// options) or a ready .cpeft file.
type PublishRequest struct {
	Path    string  `json:"path"`
	Name    string  `json:"name,omitempty"`
	Density float64 `json:"density,omitempty"` // 0: the node's default
	Alpha   string  `json:"alpha,omitempty"`
	Scope   string  `json:"scope,omitempty"`
	Base    string  `json:"base,omitempty"`
}

// Transfer is the state of a fetch.
type Transfer struct {
	CID string `json:"cid"`
	// Name is the expert's name where the node knows it (in GET /v1/status).
	Name  string `json:"name,omitempty"`
	State string `json:"state"` // running, done, failed, canceled
	// Phase says, for people, what a running fetch does now: "waiting for
	// a fetch slot", "looking for providers: gossip, DHT (attempt 2 of
	// 5)", "fetching from 3 providers", "retrying in 2s (attempt 1 of 5
	// failed)", "storing", "canceling"; empty once it ended.
	Phase    string    `json:"phase,omitempty"`
	Bytes    uint64    `json:"bytes"`
	Total    uint64    `json:"total"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Error    string    `json:"error,omitempty"`
}

// Transfer states.
const (
	StateRunning  = "running"
	StateDone     = "done"
	StateFailed   = "failed"
	StateCanceled = "canceled" // by DELETE /v1/fetch/{cid}
)

// PhaseFetching begins the phase of a fetch that receives the expert
// ("fetching from 3 providers"): a client that shows the bytes, the rate
// and the time left may leave it out.
const PhaseFetching = "fetching"

// MaterializeRequest writes an expert as a PEFT directory.
type MaterializeRequest struct {
	Dir   string `json:"dir"`
	DType string `json:"dtype,omitempty"` // source, f32, f16, bf16
	// Overwrite lets the node write into a directory that holds files
	// (replacing the adapter's); without it such a directory is refused.
	Overwrite bool `json:"overwrite,omitempty"`
}

// Refusal is why an expert is not handed to the inference server: Reason
// is a stable code (handoff's Reason constants: other_base, unknown_base,
// rank, peft_type, untrusted...), Detail a sentence.
type Refusal struct {
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// ResolveRequest is the optional body of POST /v1/resolve/{name}.
type ResolveRequest struct {
	// BaseModel is the model the server serves (vLLM: the `vllm serve`
	// model argument); only an expert for it resolves.
	BaseModel string `json:"base_model,omitempty"`
}

// Materialized is where an expert was written.
type Materialized struct {
	CID string `json:"cid"`
	Dir string `json:"dir"`
	// For the inference server (resolve): Name is the adapter name
	// (vLLM's lora_name), Path its directory as the server sees it
	// (lora_path, LoRAX's adapter_id), LoRAIntID a positive id stable for
	// the CID (vLLM's lora_int_id).
	Name      string `json:"name,omitempty"`
	Path      string `json:"path,omitempty"`
	LoRAIntID int64  `json:"lora_int_id,omitempty"`
}

// Adapter is one expert written for the inference server.
type Adapter struct {
	Name string `json:"name"` // directory name and vLLM lora_name
	CID  string `json:"cid"`
	Dir  string `json:"dir,omitempty"`
	// Version is the version directory Dir links to; ServerPath the same as
	// the server sees it (vLLM's lora_path, LoRAX's adapter_id).
	Version    string `json:"version,omitempty"`
	ServerPath string `json:"server_path,omitempty"`
	PeftType   string `json:"peft_type,omitempty"`
	// Publisher and ExpertVersion: the version of its publisher's line in
	// service under the name (docs/names.md); empty for an expert of none.
	Publisher     string `json:"publisher,omitempty"`
	ExpertVersion uint64 `json:"expert_version,omitempty"`
	Loaded        bool   `json:"loaded"`            // vLLM acknowledged the load
	Pending       string `json:"pending,omitempty"` // "load" or "unload" while a vLLM call is due
	Attempts      int    `json:"attempts"`
	Failed        bool   `json:"failed,omitempty"` // the last vLLM call failed for good
	LastError     string `json:"last_error,omitempty"`
	Note          string `json:"note,omitempty"`
}

// NameInfo is what a node knows of an expert name, the body of GET
// /v1/resolve/{name}.
type NameInfo struct {
	// Name as asked: "name" or "publisher/name".
	Name string `json:"name"`
	// Resolved is the version the name resolves to (docs/names.md): the
	// latest version of the line of the first trusted publisher using the
	// name, or of the publisher named; nil if none.
	Resolved *NameVersion `json:"resolved,omitempty"`
	// Versions are the versions the node knows of every line of the name,
	// held or announced (the swarm announces each line's latest): by
	// publisher, newest first.
	Versions []NameVersion `json:"versions"`
}

// NameVersion is one version of a line of a name.
type NameVersion struct {
	Name      string `json:"name"` // as its publisher spelled it
	Publisher string `json:"publisher"`
	Version   uint64 `json:"version"` // 0: a publication made before versions
	CID       string `json:"cid"`
	Local     bool   `json:"local"`
	Pinned    bool   `json:"pinned,omitempty"`
	Trusted   bool   `json:"trusted"`
	// InService: the inference server's adapter of the name is this one.
	InService bool      `json:"in_service,omitempty"`
	Published time.Time `json:"published,omitzero"`  // when the publisher signed it
	Providers int       `json:"providers,omitempty"` // other peers known to hold it
}

// errorBody is every error response.
type errorBody struct {
	Error string `json:"error"`
}
