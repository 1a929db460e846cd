package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/internal/atomicfile"
	"github.com/expertd/expertd/internal/slogutil"
)

// tempPrefix starts the name of every temporary directory in the adapters
// directory; SanitizeName never yields a leading dot, so none is an adapter.
const tempPrefix = ".expertd-"

// Placed is where Materialize put an adapter.
type Placed struct {
	Name string // the adapter's name: SanitizeName of the expert's, its vLLM lora_name
	Dir  string // Dir/Name, the name's link (vLLM's filesystem resolver, LoRAX)
	// Version is the version directory the name points at, and ServerPath
	// the same as the server sees it (Options.ServerDir): vLLM's lora_path
	// and LoRAX's adapter_id. It never changes while a name points at it.
	Version    string
	ServerPath string
}

// Version places an expert in its publisher's line of versions of its name
// (docs/names.md). The zero Version places it in none.
type Version struct {
	Publisher string // the publisher's peer ID
	Seq       uint64 // the version number, from 1
}

// Materialize is MaterializeVersion of an expert in no line of versions.
func (h *Handoff) Materialize(ctx context.Context, cid, name string, open func() (io.ReadCloser, error)) (Placed, error) {
	return h.MaterializeVersion(ctx, cid, name, Version{}, open)
}

// MaterializeVersion writes the expert cid, called name, version ver of
// its publisher's line, for the inference server: as the version directory Dir/.versions/<cid>-<tag>/ and the link
// Dir/SanitizeName(name) pointing at it (see layout.go). open is called to
// read the expert's container (a .cpeft stream, closed when read): first
// for its header, which the Policy checks (an expert it refuses is never
// written, and a *Refusal, matching ErrRefused, says why), then, if the
// version directory has to be written, for the whole expert.
//
// The version is decoded into a temporary directory and renamed into
// place when complete, then the name's link is pointed at it. A name is
// held by the expert its link points at and, if that is a version of a
// line, by that line: it moves only to a newer version of the same line
// (same publisher, a higher Seq), and vLLM replaces the adapter in place.
// Another expert (another publisher's, an older version of the line, one
// of no line), a name that is expertd's link under another case, or a
// name that is not expertd's link, fails with ErrConflict (and
// ErrSuperseded for an older version) and leaves it as it is. The same CID
// written with other settings (dtype, base model) is a new version
// directory of the same expert: the name moves to it the same way.
// Only a PEFT adapter with its adapter_config.json is written (a full
// residual is ErrNotAdapter), and only once its declared output has passed
// Options.MaxOutput (compress.ErrOutputLimit) and the free space of Dir
// (compress.ErrNoSpace).
//
// Then, for an adapter vLLM does not hold yet, a load is queued for Serve;
// Status reports how it went.
func (h *Handoff) MaterializeVersion(ctx context.Context, cid, name string, ver Version, open func() (io.ReadCloser, error)) (Placed, error) {
	if h.dir == "" {
		return Placed{}, ErrDisabled
	}
	if cid == "" {
		return Placed{}, errors.New("handoff: empty CID")
	}
	sname, err := SanitizeName(name)
	if err != nil {
		return Placed{}, err
	}
	unlock, err := h.locks.lock(ctx, lockName(sname))
	if err != nil {
		return Placed{}, err
	}
	defer unlock()

	link := filepath.Join(h.dir, sname)
	cur, err := h.linked(sname)
	switch {
	case err == nil:
		if c, _ := versionCID(cur); c != cid {
			if err := h.mayMove(link, cur, cid, ver); err != nil {
				return Placed{}, err
			}
		}
	case errors.Is(err, errForeign):
		return Placed{}, fmt.Errorf("%w: %s exists and was not written by expertd", ErrConflict, link)
	case errors.Is(err, fs.ErrNotExist):
		cur = ""
		if other, ok := h.caseVariant(sname); ok {
			m, _ := h.Holder(other)
			return Placed{}, fmt.Errorf("%w: %s is the name %s under another case, held by %s", ErrConflict, link, other, m.holding())
		}
	default:
		return Placed{}, fmt.Errorf("handoff: %w", err)
	}

	fill, peft, err := h.inspect(ctx, cid, open)
	var r *Refusal
	if errors.As(err, &r) {
		h.refuse(cid, name, r)
		if cur != "" { // refused now (the settings changed): take it away
			h.unlink(sname, name, cid, peft, cur)
		}
		return Placed{}, err
	}
	if err != nil {
		return Placed{}, err
	}
	v := versionName(cid, h.dtype, fill)
	p := Placed{Name: sname, Dir: link, Version: h.versionDir(v), ServerPath: h.serverPath(v)}
	if cur == v {
		if m, err := readMarker(p.Version); err == nil {
			h.noteVersion(p.Version, m, ver)
			h.track(sname, name, cid, p, peft, ver, false, false)
			return p, nil
		}
	}
	tmp := ""
	if m, err := readMarker(p.Version); err != nil || m.CID != cid {
		if tmp, _, err = h.write(ctx, cid, name, fill, ver, open); tmp != "" {
			defer os.RemoveAll(tmp) // a no-op once renamed
		}
		if err != nil {
			return Placed{}, err
		}
	} else {
		h.noteVersion(p.Version, m, ver)
	}
	// Placing the version and linking the name are one step for the
	// janitor, which never sees the version unpointed in between.
	h.fsMu.Lock()
	wrote, err := h.place(tmp, cid, v)
	if err == nil {
		err = h.point(sname, v)
	}
	if err == nil && cur != "" && cur != v {
		h.retire(cur, time.Now())
	}
	h.fsMu.Unlock()
	if err != nil {
		return Placed{}, err
	}
	h.log.Info("adapter materialized", slogutil.Name(sname), slogutil.CID(cid), "peft_type", peft, "version", v, "line_version", ver.Seq)
	h.track(sname, name, cid, p, peft, ver, wrote, cur != "" && cur != v)
	return p, nil
}

// mayMove reports whether the name whose link is at link, pointing at
// version cur of another expert, may move to cid, version ver of its line:
// only if cur is an older version of the same line.
func (h *Handoff) mayMove(link, cur, cid string, ver Version) error {
	held, _ := versionCID(cur)
	m, _ := readMarker(h.versionDir(cur))
	switch {
	case ver.Seq == 0 || ver.Publisher == "" || m.Version == 0:
		return fmt.Errorf("%w: %s holds expert %s, not %s", ErrConflict, link, held, cid)
	case m.Publisher != ver.Publisher:
		return fmt.Errorf("%w: %s holds %s, not publisher %s's expert %s", ErrConflict, link, m.holding(), ver.Publisher, cid)
	case ver.Seq <= m.Version:
		return fmt.Errorf("%w: %w: %s holds version %d (%s), not older version %d (%s)", ErrConflict, ErrSuperseded, link, m.Version, held, ver.Seq, cid)
	}
	return nil
}

// noteVersion records ver in the marker m of the version directory dir,
// written before its line was known (by an expertd without versions, say),
// so that its newer versions may take the name (mayMove). A marker that
// names a line is never changed. The marker is replaced by a rename; the
// adapter's files are not touched.
func (h *Handoff) noteVersion(dir string, m Marker, ver Version) {
	if ver.Seq == 0 || m.Version != 0 {
		return
	}
	m.Publisher, m.Version = ver.Publisher, ver.Seq
	if err := replaceMarker(dir, m); err != nil {
		h.log.Warn("handoff: recording an adapter's version", "dir", dir, "err", err)
	}
}

// lockName is what Materialize and Remove lock for an adapter name: names
// differing only by case are one name.
func lockName(sname string) string { return strings.ToLower(sname) }

// inspect reads the container's header and applies the policy: it returns
// the base model to write into the config ("" for none) and the PEFT
// type, or a *Refusal.
func (h *Handoff) inspect(ctx context.Context, cid string, open func() (io.ReadCloser, error)) (fill, peft string, err error) {
	if open == nil {
		return "", "", fmt.Errorf("handoff: expert %s: nothing to read it from", cid)
	}
	if err := ctx.Err(); err != nil {
		return "", "", err
	}
	rc, err := open()
	if err != nil {
		return "", "", fmt.Errorf("handoff: opening expert %s: %w", cid, err)
	}
	defer rc.Close()
	cr, err := compress.NewReader(rc)
	if err != nil {
		return "", "", fmt.Errorf("handoff: decoding expert %s: %w", cid, err)
	}
	hdr := cr.Header()
	fill, r := h.policy.CheckHeader(hdr)
	if r != nil {
		return "", hdr.PeftType, r
	}
	return fill, hdr.PeftType, nil
}

// place renames tmp, the expert cid written anew ("" if it was there
// already), to version v, unless a complete v is there (another name of
// the same expert wrote it meanwhile); a partial one is set aside. wrote
// reports whether tmp was placed. The caller holds h.fsMu.
func (h *Handoff) place(tmp, cid, v string) (wrote bool, err error) {
	dst := h.versionDir(v)
	if m, err := readMarker(dst); err == nil && m.CID == cid {
		return false, nil
	}
	if tmp == "" {
		return false, fmt.Errorf("handoff: version %s vanished while in use", v)
	}
	if _, err := os.Lstat(dst); err == nil { // half there (no marker)
		trash, err := h.tempName("rm-")
		if err != nil {
			return false, err
		}
		if err := os.Rename(dst, trash); err != nil {
			return false, fmt.Errorf("handoff: %w", err)
		}
		defer os.RemoveAll(trash)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return false, fmt.Errorf("handoff: %w", err)
	}
	_ = atomicfile.SyncDir(filepath.Dir(dst))
	return true, nil
}

// write decodes the container into a new temporary directory, which it
// returns (also on error, for the caller to remove), with the adapter's
// PEFT type. fill, if set, is written as the config's base model.
func (h *Handoff) write(ctx context.Context, cid, name, fill string, ver Version, open func() (io.ReadCloser, error)) (tmp, peft string, err error) {
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
	if fill != "" { // the Policy's choice: an unknown base accepted, or an alias
		path := filepath.Join(tmp, compress.AdapterConfigFile)
		doc, err := os.ReadFile(path)
		if err != nil {
			return tmp, "", fmt.Errorf("handoff: %w", err)
		}
		if doc, err = setTopLevelString(doc, baseModelKey, fill); err != nil {
			return tmp, "", fmt.Errorf("expert %s: %w", cid, err)
		}
		if err := writeFileSync(path, doc); err != nil {
			return tmp, "", fmt.Errorf("handoff: %w", err)
		}
	}
	m := Marker{CID: cid, Name: name, PeftType: hdr.PeftType, DType: h.dtype, ServedModel: fill, Publisher: ver.Publisher, Version: ver.Seq}
	if err := writeMarker(tmp, m); err != nil {
		return tmp, "", fmt.Errorf("handoff: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes 0700; the server may be another user
		return tmp, "", fmt.Errorf("handoff: %w", err)
	}
	_ = atomicfile.SyncDir(tmp)
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

// readerFunc adapts a function to io.Reader.
type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// isLoRA reports whether vLLM can load an adapter of this PEFT type.
func isLoRA(peftType string) bool { return strings.EqualFold(peftType, "LORA") }
