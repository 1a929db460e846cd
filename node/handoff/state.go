package handoff

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/expertd/expertd/internal/slogutil"
)

// AdapterStatus is the state of one adapter name, for the API.
type AdapterStatus struct {
	Name   string `json:"name"`        // directory name and vLLM lora_name
	Expert string `json:"expert_name"` // the expert's own name
	CID    string `json:"cid"`
	Dir    string `json:"dir,omitempty"` // the name's link; "" once removed
	// Version is the version directory the name points at, ServerPath
	// the same as the server sees it (vLLM's lora_path).
	Version    string `json:"version,omitempty"`
	ServerPath string `json:"server_path,omitempty"`
	PeftType   string `json:"peft_type,omitempty"`
	// Publisher and ExpertVersion: the expert's place in its publisher's
	// line of versions of its name; empty for none.
	Publisher     string `json:"publisher,omitempty"`
	ExpertVersion uint64 `json:"expert_version,omitempty"`
	// Loaded: vLLM acknowledged a load (or said it had the adapter already).
	Loaded bool `json:"loaded"`
	// Pending is "load" or "unload" while a vLLM call is due.
	Pending string `json:"pending,omitempty"`
	// Attempts counts the calls made for the pending or last operation.
	Attempts int `json:"attempts"`
	// Failed: the last operation failed for good (LastError says why).
	Failed    bool   `json:"failed,omitempty"`
	LastError string `json:"last_error,omitempty"`
	// Note says why the adapter is not sent to vLLM, if it is not.
	Note string `json:"note,omitempty"`
}

// Stats counts hand-off events since New, for metrics.
type Stats struct {
	Materialized uint64 `json:"materialized"` // adapter directories written
	Removed      uint64 `json:"removed"`      // adapter directories deleted
	LoadOK       uint64 `json:"load_ok"`
	LoadFailed   uint64 `json:"load_failed"` // refused for good
	UnloadOK     uint64 `json:"unload_ok"`
	UnloadFailed uint64 `json:"unload_failed"` // refused for good
	Retries      uint64 `json:"retries"`       // calls vLLM did not answer, to be retried
	Reloads      uint64 `json:"reloads"`       // loads queued again for adapters vLLM had lost (restarted)
	Skipped      uint64 `json:"skipped"`       // adapters not sent to vLLM (not LoRA)
	Refused      uint64 `json:"refused"`       // experts the Policy refused
}

// Status lists every adapter the Handoff knows of, by name: those
// materialized or confirmed by Materialize since New, and removed ones
// whose unload is pending or failed.
func (h *Handoff) Status() []AdapterStatus {
	h.mu.Lock()
	out := make([]AdapterStatus, 0, len(h.adapters))
	for _, e := range h.adapters {
		s := AdapterStatus{
			Name: e.name, Expert: e.expert, CID: e.cid, Dir: e.dir, Version: e.version, ServerPath: e.server, PeftType: e.peftType,
			Publisher: e.line.Publisher, ExpertVersion: e.line.Seq,
			Loaded: e.loaded, Attempts: e.attempts, Failed: e.failed, LastError: e.lastErr, Note: e.note,
		}
		switch {
		case e.needUnload:
			s.Pending = "unload"
		case e.needLoad:
			s.Pending = "load"
		}
		out = append(out, s)
	}
	h.mu.Unlock()
	slices.SortFunc(out, func(a, b AdapterStatus) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Stats returns the event counters.
func (h *Handoff) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stats
}

// track records that name points at version p of cid, version ver of its
// line (written now if wrote; moved from another version directory if
// moved) and queues a vLLM load if one is wanted: a load in place
// (load_inplace) when vLLM holds the name already.
func (h *Handoff) track(name, expert, cid string, p Placed, peft string, ver Version, wrote, moved bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.refused, cid)
	if wrote {
		h.stats.Materialized++
	}
	e := h.adapters[name]
	if e == nil {
		e = &adapter{name: name}
		h.adapters[name] = e
	}
	if e.cid != cid || e.server != p.ServerPath {
		e.gen++ // a call under way was for another version
	}
	e.expert, e.cid, e.dir, e.version, e.server, e.peftType, e.line = expert, cid, p.Dir, p.Version, p.ServerPath, peft, ver
	if h.vllm == nil {
		return
	}
	if !isLoRA(peft) { // the Policy refuses these; kept for adapters of older runs
		if e.note == "" {
			h.stats.Skipped++
		}
		e.note = fmt.Sprintf("not sent to vLLM, which loads LoRA adapters only; this is %s", peft)
		e.needLoad = false
		return
	}
	e.note = ""
	if moved && (e.loaded || e.needUnload) {
		e.replace = true // vLLM may hold the version just replaced
	}
	if (!e.loaded || moved) && !e.needLoad {
		e.needLoad = true
		h.queue(e)
	}
	h.signal()
}

// untrack records that name no longer holds cid (its directory was deleted
// now if removed) and queues a vLLM unload if one may be needed.
func (h *Handoff) untrack(name, expert, cid, peft string, removed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if removed {
		h.stats.Removed++
	}
	e := h.adapters[name]
	switch {
	case e == nil && !removed:
		return // nothing on disk, nothing known
	case e == nil: // written by an earlier run: vLLM may have it
		e = &adapter{name: name, expert: expert, cid: cid, peftType: peft}
		h.adapters[name] = e
	case e.cid != cid && !removed:
		return // a record of another expert under this name; not ours to change
	case e.cid != cid: // a stale record; what vLLM may hold now is what was just removed
		e.expert, e.cid, e.peftType = expert, cid, peft
	}
	e.dir, e.version, e.server = "", "", ""
	e.gen++
	e.needLoad, e.replace = false, false
	if h.vllm == nil || !isLoRA(e.peftType) {
		delete(h.adapters, name)
		return
	}
	if !e.needUnload {
		e.needUnload = true
		h.queue(e)
	}
	h.signal()
}

// queue starts a new operation on e: a fresh attempt count, and a place in
// line. Called with h.mu held.
func (h *Handoff) queue(e *adapter) {
	h.seq++
	e.seq = h.seq
	e.attempts = 0
	e.failed = false
	e.lastErr = ""
}

// refusal is an expert the Policy refused, for Refused.
type refusal struct {
	name string
	r    *Refusal
}

// maxRefused bounds the refusals remembered: one per expert held, in
// practice.
const maxRefused = 1 << 14

// refuse records why the expert cid, called name, is not handed off.
func (h *Handoff) refuse(cid, name string, r *Refusal) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.refused[cid]; !ok {
		h.stats.Refused++
		if len(h.refused) >= maxRefused {
			for k := range h.refused { // drop any one
				delete(h.refused, k)
				break
			}
		}
	}
	h.refused[cid] = refusal{name: name, r: r}
	h.log.Info("expert not handed off", slogutil.CID(cid), slogutil.Name(name), "reason", r.Reason, "detail", r.Detail)
}

// Refused returns why the expert cid was not handed off the last time it
// was tried (Materialize), nil if it was or was never tried.
func (h *Handoff) Refused(cid string) *Refusal {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refused[cid].r
}

// Forget drops what the Handoff remembers of the expert cid's refusal;
// the node calls it when it no longer holds the expert.
func (h *Handoff) Forget(cid string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.refused, cid)
}
