package handoff

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/expertd/expertd/internal/slogutil"
)

// job is one vLLM call taken from the queue.
type job struct {
	name    string
	unload  bool
	server  string // lora_path
	replace bool   // load in place
	gen     uint64
}

// Serve makes the queued vLLM calls, one at a time, and every
// Options.Check checks that vLLM still holds the adapters it loaded (see
// checkLoaded), until ctx is done; it returns nil then. Without a vLLM URL
// it just waits for ctx. Serve may be called once.
func (h *Handoff) Serve(ctx context.Context) error {
	if !h.started.CompareAndSwap(false, true) {
		return errors.New("handoff: Serve called twice")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { h.janitorLoop(ctx) })
	if h.vllm == nil {
		<-ctx.Done()
		return nil
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	nextCheck := time.Now().Add(h.check)
	for {
		j, wait := h.next(time.Now())
		if j != nil {
			h.run(ctx, *j)
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		if h.check > 0 {
			until := time.Until(nextCheck)
			if until <= 0 {
				h.checkLoaded(ctx)
				if ctx.Err() != nil {
					return nil
				}
				nextCheck = time.Now().Add(h.check)
				continue
			}
			if wait == 0 || until < wait {
				wait = until
			}
		}
		var tick <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-h.wake:
		case <-tick:
		}
	}
}

// janitorLoop runs the janitor (layout.go) until ctx is done, often
// enough that a version is deleted soon after its grace ends.
func (h *Handoff) janitorLoop(ctx context.Context) {
	if h.dir == "" {
		return
	}
	t := time.NewTicker(min(max(h.grace/4, time.Second), time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.janitor(now)
		}
	}
}

// next returns the call due first, or nil and how long to wait for the
// backoff to end (0: wait for work).
func (h *Handoff) next(now time.Time) (*job, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var first *adapter
	for _, e := range h.adapters {
		if (e.needUnload || e.needLoad) && (first == nil || e.seq < first.seq) {
			first = e
		}
	}
	if first == nil {
		return nil, 0
	}
	if now.Before(h.notBefore) {
		return nil, h.notBefore.Sub(now)
	}
	first.attempts++
	return &job{name: first.name, unload: first.needUnload, server: first.server, replace: first.replace, gen: first.gen}, 0
}

// checkLoaded asks vLLM which adapters it holds and queues a load for each
// one it acknowledged but no longer lists (vLLM restarted, or someone
// unloaded it) and that is still materialized. A vLLM that does not answer
// is asked again at the next check; one that answers, being up, ends any
// backoff of the queued calls. A refusal (a wrong API key, a proxy without
// the route) is logged once as a warning, as it turns the check off.
func (h *Handoff) checkLoaded(ctx context.Context) {
	if !h.anyLoaded() {
		return
	}
	roots, err := h.vllm.models(ctx)
	if err != nil {
		switch {
		case errCanceled(ctx, err):
		case errors.Is(err, ErrUnavailable) || h.checkWarned:
			h.log.Debug("listing vLLM's adapters failed", slogutil.Err(err))
		default:
			h.checkWarned = true
			h.log.Warn("cannot list vLLM's adapters; adapters it loses on a restart are not loaded again", slogutil.Err(err))
		}
		return
	}
	h.checkWarned = false
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fails, h.notBefore = 0, time.Time{}
	for _, e := range h.adapters {
		if !e.loaded || e.needLoad || e.needUnload || e.dir == "" {
			continue
		}
		root, ok := roots[e.name]
		switch {
		case !ok:
			e.loaded, e.needLoad = false, true
			h.stats.Reloads++
			h.log.Warn("vLLM no longer holds the adapter (restarted?); loading it again", slogutil.Name(e.name))
		case !h.current(e.name, e.server, root):
			e.needLoad, e.replace = true, true
			h.stats.Reloads++
			h.log.Warn("vLLM holds other files under the adapter's name; replacing them", slogutil.Name(e.name), "vllm_path", root)
		default:
			continue
		}
		h.queue(e)
	}
}

// anyLoaded reports whether vLLM acknowledged any adapter still wanted.
func (h *Handoff) anyLoaded() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.adapters {
		if e.loaded && e.dir != "" {
			return true
		}
	}
	return false
}

// run makes the call j and records its outcome.
func (h *Handoff) run(ctx context.Context, j job) {
	var (
		out outcome
		msg string
		err error
	)
	if j.unload {
		out, msg, err = h.vllm.unload(ctx, j.name)
	} else {
		out, msg, err = h.vllm.load(ctx, j.name, j.server, j.replace)
		if out == already {
			out, msg, err = h.already(ctx, j, msg)
		}
	}
	if err != nil && errCanceled(ctx, err) {
		return // shutting down: the call stays queued
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if out == unavailable {
		h.stats.Retries++
		h.fails++
		d := h.backoff
		for i := 1; i < h.fails && d < h.maxBackoff; i++ {
			d *= 2
		}
		d = min(d, h.maxBackoff)
		h.notBefore = time.Now().Add(d)
		if e := h.adapters[j.name]; e != nil {
			e.lastErr = err.Error()
		}
		log := h.log.Debug
		if h.fails == 1 {
			log = h.log.Warn // once per outage
		}
		log("handoff: vLLM unavailable; retrying", "name", j.name, "in", d, "err", err)
		return
	}
	h.fails, h.notBefore = 0, time.Time{}
	e := h.adapters[j.name]
	if j.unload {
		h.unloaded(e, j, out, msg, err)
	} else {
		h.loaded(e, j, out, msg, err)
	}
}

// unloaded records the outcome of an unload. Called with h.mu held.
func (h *Handoff) unloaded(e *adapter, j job, out outcome, msg string, err error) {
	if out == done {
		h.stats.UnloadOK++
		h.log.Info("vLLM unloaded adapter", slogutil.Name(j.name), "vllm", msg)
	} else {
		h.stats.UnloadFailed++
		h.log.Warn("vLLM unload failed", slogutil.Name(j.name), slogutil.Err(err))
	}
	if e == nil {
		return
	}
	e.needUnload = false
	if out == done {
		e.loaded = false
		e.lastErr, e.failed = "", false
	} else {
		e.lastErr, e.failed = err.Error(), true
	}
	switch {
	case out == done && e.dir == "" && !e.needLoad:
		delete(h.adapters, j.name) // removed and unloaded: nothing left to report
	case out == done && e.needLoad:
		h.queue(e) // the load of the new copy starts afresh
	}
}

// loaded records the outcome of a load. Called with h.mu held.
func (h *Handoff) loaded(e *adapter, j job, out outcome, msg string, err error) {
	if out == done {
		h.stats.LoadOK++
		h.log.Info("vLLM loaded adapter", slogutil.Name(j.name), slogutil.Path(j.server), "in_place", j.replace, "vllm", msg)
	} else if out != reload {
		h.stats.LoadFailed++
		h.log.Warn("vLLM load failed", slogutil.Name(j.name), slogutil.Path(j.server), slogutil.Err(err))
	}
	if e == nil {
		return
	}
	if out == reload && e.gen == j.gen {
		h.log.Info("vLLM cannot replace the adapter in place; unloading it first", slogutil.Name(j.name))
		e.needUnload, e.replace = true, false
		h.queue(e)
		return
	}
	if out == done {
		e.loaded = true // whatever else changed, vLLM holds it now
	}
	if e.gen != j.gen {
		return // removed or replaced meanwhile; the queued calls follow that
	}
	e.needLoad, e.replace = false, false
	if out == done {
		e.lastErr, e.failed = "", false
	} else {
		e.lastErr, e.failed = err.Error(), true
	}
}

// already settles a load vLLM answered with "already been loaded": done
// if what vLLM holds under the name is this version (loaded by an earlier
// run of expertd, or by vLLM's filesystem resolver through the name's
// link); else a load in place if vLLM supports it, or an unload and a
// load if it does not.
func (h *Handoff) already(ctx context.Context, j job, msg string) (outcome, string, error) {
	roots, err := h.vllm.models(ctx)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			return unavailable, "", err
		}
		return failed, "", err
	}
	if root, ok := roots[j.name]; ok && h.current(j.name, j.server, root) {
		return done, "already loaded", nil
	}
	if !j.replace && strings.Contains(msg, inplaceHint) {
		out, msg, err := h.vllm.load(ctx, j.name, j.server, true)
		if out == already {
			return reload, msg, nil
		}
		return out, msg, err
	}
	return reload, msg, nil
}

// current reports whether vLLM's adapter name, loaded from root, is the
// version at server: root is that version or the name's link.
func (h *Handoff) current(name, server, root string) bool {
	return root != "" && (root == server || filepath.Clean(root) == filepath.Join(h.serverDir, name))
}
