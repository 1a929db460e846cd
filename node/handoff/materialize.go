package handoff

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/expertd/expertd/compress"
)

// tempPrefix starts the name of every temporary directory in the adapters
// directory; SanitizeName never yields a leading dot, so none is an adapter.
const tempPrefix = ".expertd-"

// Materialize writes the expert cid, called name, as the adapter directory
// Dir/SanitizeName(name)/ and returns that directory. open is called to
// read the expert's container (a .cpeft stream, closed when read) only if
// the directory has to be written.
//
// Only a PEFT adapter with its adapter_config.json is written (a full
// residual is ErrNotAdapter), and only once its declared output has passed
// Options.MaxOutput (compress.ErrOutputLimit) and the free space of Dir
// (compress.ErrNoSpace). The adapter is decoded into a temporary directory
// in Dir and renamed into place when complete. If the directory already holds this CID written with
// the current ServedModel and DType, nothing is written; if it holds this
// CID written with other settings, it is rewritten and swapped in. If it
// holds another CID, or is not expertd's, Materialize fails with
// ErrConflict and leaves it as it is.
//
// Then, for a LoRA adapter with vLLM configured and not yet loaded, a load
// is queued for Serve; Status reports how it went.
func (h *Handoff) Materialize(ctx context.Context, cid, name string, open func() (io.ReadCloser, error)) (string, error) {
	if h.dir == "" {
		return "", ErrDisabled
	}
	if cid == "" {
		return "", errors.New("handoff: empty CID")
	}
	sname, err := SanitizeName(name)
	if err != nil {
		return "", err
	}
	unlock, err := h.locks.lock(ctx, sname)
	if err != nil {
		return "", err
	}
	defer unlock()

	dir := filepath.Join(h.dir, sname)
	m, err := readMarker(dir)
	refresh := false
	switch {
	case err == nil && m.CID != cid:
		return "", fmt.Errorf("%w: %s holds expert %s (%q), not %s", ErrConflict, dir, m.CID, m.Name, cid)
	case err == nil && m.DType == h.dtype && m.ServedModel == h.servedModel:
		h.track(sname, name, cid, dir, m.PeftType, false, false)
		return dir, nil
	case err == nil:
		refresh = true // same expert written with other settings
	case errors.Is(err, errNoMarker):
		return "", fmt.Errorf("%w: %s exists and was not written by expertd", ErrConflict, dir)
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("handoff: %w", err)
	}

	tmp, peft, err := h.write(ctx, cid, name, open)
	if tmp != "" {
		defer os.RemoveAll(tmp) // a no-op once renamed
	}
	if err != nil {
		return "", err
	}
	if refresh {
		err = h.swap(tmp, dir)
	} else {
		err = h.place(tmp, dir)
	}
	if err != nil {
		return "", err
	}
	syncDir(h.dir)
	h.log.Info("handoff: adapter materialized", "name", sname, "cid", cid, "peft_type", peft, "dir", dir)
	h.track(sname, name, cid, dir, peft, true, refresh)
	return dir, nil
}

// write decodes the container into a new temporary directory, which it
// returns (also on error, for the caller to remove), with the adapter's
// PEFT type.
func (h *Handoff) write(ctx context.Context, cid, name string, open func() (io.ReadCloser, error)) (tmp, peft string, err error) {
	tmp, err = os.MkdirTemp(h.dir, tempPrefix+"tmp-")
	if err != nil {
		return "", "", fmt.Errorf("handoff: %w", err)
	}
	if open == nil {
		return tmp, "", fmt.Errorf("handoff: expert %s: nothing to read it from", cid)
	}
	rc, err := open()
	if err != nil {
		return tmp, "", fmt.Errorf("handoff: opening expert %s: %w", cid, err)
	}
	defer rc.Close()
	r := readerFunc(func(p []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return rc.Read(p)
	})
	hdr, err := compress.Expand(r, tmp, compress.ExpandOptions{DType: h.dtype, MaxOutput: h.maxOutput, Accept: acceptAdapter})
	switch {
	case errors.Is(err, ErrNotAdapter):
		return tmp, "", fmt.Errorf("expert %s: %w", cid, err)
	case errors.Is(err, compress.ErrBase):
		return tmp, "", fmt.Errorf("%w: expert %s: %w", ErrNotAdapter, cid, err)
	case errors.Is(err, compress.ErrOutputLimit):
		return tmp, "", fmt.Errorf("handoff: expert %s: %w (store.max_output_size)", cid, err)
	case err != nil:
		return tmp, "", fmt.Errorf("handoff: decoding expert %s: %w", cid, err)
	}
	if h.servedModel != "" {
		path := filepath.Join(tmp, compress.AdapterConfigFile)
		doc, err := os.ReadFile(path)
		if err != nil {
			return tmp, "", fmt.Errorf("handoff: %w", err)
		}
		if doc, err = setTopLevelString(doc, baseModelKey, h.servedModel); err != nil {
			return tmp, "", fmt.Errorf("expert %s: %w", cid, err)
		}
		if err := writeFileSync(path, doc); err != nil {
			return tmp, "", fmt.Errorf("handoff: %w", err)
		}
	}
	m := Marker{CID: cid, Name: name, PeftType: hdr.PeftType, DType: h.dtype, ServedModel: h.servedModel}
	if err := writeMarker(tmp, m); err != nil {
		return tmp, "", fmt.Errorf("handoff: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes 0700; the server may be another user
		return tmp, "", fmt.Errorf("handoff: %w", err)
	}
	syncDir(tmp)
	return tmp, hdr.PeftType, nil
}

// acceptAdapter lets Expand write only a PEFT adapter with its config:
// not a full fine-tuning residual, not weights without adapter_config.json.
func acceptAdapter(h *compress.Header) error {
	if h.PeftType == compress.PeftTypeFull || h.ConfigName != compress.AdapterConfigFile {
		return fmt.Errorf("%w: %s with config %q", ErrNotAdapter, h.PeftType, h.ConfigName)
	}
	return nil
}

// place renames tmp to dir, which must not exist.
func (h *Handoff) place(tmp, dir string) error {
	// rename(2) would replace an empty directory someone made meanwhile.
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("%w: %s appeared while writing it", ErrConflict, dir)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	return nil
}

// swap replaces the adapter directory dir by tmp: dir is renamed aside
// first, so that it is missing for an instant but never partial.
func (h *Handoff) swap(tmp, dir string) error {
	old, err := h.trashName()
	if err != nil {
		return err
	}
	if err := os.Rename(dir, old); err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if rerr := os.Rename(old, dir); rerr != nil {
			h.log.Error("handoff: restoring an adapter", "dir", dir, "from", old, "err", rerr)
		}
		return fmt.Errorf("handoff: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		h.log.Warn("handoff: removing a replaced adapter", "dir", old, "err", err)
	}
	return nil
}

// trashName returns an unused temporary path in Dir to move an adapter
// directory to before deleting it.
func (h *Handoff) trashName() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("handoff: %w", err)
	}
	return filepath.Join(h.dir, tempPrefix+"rm-"+hex.EncodeToString(b[:])), nil
}

// readerFunc adapts a function to io.Reader.
type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// isLoRA reports whether vLLM can load an adapter of this PEFT type.
func isLoRA(peftType string) bool { return strings.EqualFold(peftType, "LORA") }
