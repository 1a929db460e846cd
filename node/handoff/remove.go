package handoff

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Remove takes the expert cid, called name, out of the hand-off: its
// adapter directory is moved out of sight at once (a single rename, so
// vLLM's filesystem resolver cannot pick it up again) and deleted, then an
// unload is queued for Serve if vLLM is configured and the adapter is a
// LoRA. Removing the directory first, not after the unload, keeps the
// resolver from reloading the adapter between the two. A directory holding
// another CID, or not written by expertd, is left alone (ErrConflict); a
// missing one is not an error.
func (h *Handoff) Remove(ctx context.Context, cid, name string) error {
	if h.dir == "" {
		return ErrDisabled
	}
	sname, err := SanitizeName(name)
	if err != nil {
		return err
	}
	unlock, err := h.locks.lock(ctx, sname)
	if err != nil {
		return err
	}
	defer unlock()

	dir := filepath.Join(h.dir, sname)
	m, err := readMarker(dir)
	switch {
	case err == nil && m.CID != cid:
		return fmt.Errorf("%w: %s holds expert %s (%q), not %s", ErrConflict, dir, m.CID, m.Name, cid)
	case err == nil:
		old, err := h.trashName()
		if err != nil {
			return err
		}
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("handoff: %w", err)
		}
		syncDir(h.dir)
		if err := os.RemoveAll(old); err != nil {
			h.log.Warn("handoff: deleting a removed adapter", "dir", old, "err", err)
		}
		h.log.Info("handoff: adapter removed", "name", sname, "cid", cid)
		h.untrack(sname, name, cid, m.PeftType, true)
		return nil
	case errors.Is(err, errNoMarker):
		return fmt.Errorf("%w: %s was not written by expertd", ErrConflict, dir)
	case errors.Is(err, fs.ErrNotExist):
		h.untrack(sname, name, cid, "", false)
		return nil
	default:
		return fmt.Errorf("handoff: %w", err)
	}
}
