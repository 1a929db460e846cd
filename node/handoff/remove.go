package handoff

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/expertd/expertd/internal/atomicfile"
	"github.com/expertd/expertd/internal/slogutil"
)

// Remove takes the expert cid, called name, out of the hand-off: the
// name's link is deleted at once (so vLLM's filesystem resolver cannot
// pick the adapter up again), an unload is queued for Serve if vLLM is
// configured, and the version directory is deleted Options.Grace later
// (vLLM may still read it for requests under way). A name pointing at
// another CID, or not expertd's, is left alone (ErrConflict); a missing
// one is not an error.
func (h *Handoff) Remove(ctx context.Context, cid, name string) error {
	if h.dir == "" {
		return ErrDisabled
	}
	sname, err := SanitizeName(name)
	if err != nil {
		return err
	}
	unlock, err := h.locks.lock(ctx, lockName(sname))
	if err != nil {
		return err
	}
	defer unlock()
	h.Forget(cid)

	link := filepath.Join(h.dir, sname)
	v, err := h.linked(sname)
	switch {
	case err == nil:
		if c, _ := versionCID(v); c != cid {
			return fmt.Errorf("%w: %s holds expert %s, not %s", ErrConflict, link, c, cid)
		}
		m, _ := readMarker(h.versionDir(v))
		return h.unlink(sname, name, cid, m.PeftType, v)
	case errors.Is(err, errForeign):
		return fmt.Errorf("%w: %s was not written by expertd", ErrConflict, link)
	case errors.Is(err, fs.ErrNotExist):
		h.untrack(sname, name, cid, "", false)
		return nil
	default:
		return fmt.Errorf("handoff: %w", err)
	}
}

// unlink deletes the link name (pointing at version v of cid), retires v
// and queues the unload. The caller holds the name's lock.
func (h *Handoff) unlink(sname, name, cid, peft, v string) error {
	h.fsMu.Lock()
	err := os.Remove(filepath.Join(h.dir, sname))
	if err == nil {
		_ = atomicfile.SyncDir(h.dir)
		h.retire(v, time.Now())
	}
	h.fsMu.Unlock()
	if err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	h.log.Info("adapter removed", slogutil.Name(sname), slogutil.CID(cid))
	h.untrack(sname, name, cid, peft, true)
	return nil
}
