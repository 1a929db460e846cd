package handoff

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/expertd/expertd/internal/atomicfile"
	"github.com/expertd/expertd/internal/slogutil"
)

// The adapters directory holds one version directory per expert (and
// write settings) under VersionsDir, and one symbolic link per adapter
// name pointing at the version it serves:
//
//	DIR/.versions/<cid>-<tag>/   adapter_config.json, adapter_model.safetensors, .expertd.json
//	DIR/<name> -> .versions/<cid>-<tag>
//
// A version directory never changes once written: vLLM reads lora_path
// again whenever it reloads an adapter (LRU eviction, or on every step
// after a load_inplace), and a directory that changed or vanished under it
// serves wrong weights or kills the engine. So vLLM is given the version
// directory as lora_path, a name moves to another version by replacing the
// link with one rename(2), and a version no name points at any more is
// deleted only Options.Grace after that. The link is relative, so it
// resolves wherever the server mounts DIR; vLLM's filesystem resolver
// (VLLM_LORA_RESOLVER_CACHE_DIR=DIR) and LoRAX read DIR/<name> through it.

// VersionsDir is the directory, in the adapters directory, of the version
// directories. SanitizeName never yields a leading dot, so no adapter name
// is it.
const VersionsDir = ".versions"

// retiredSuffix marks, beside a version directory, when it stopped being
// pointed at: VersionsDir/<version>.retired holds that time (RFC 3339).
const retiredSuffix = ".retired"

// errForeign: an adapter name holds something expertd did not write.
var errForeign = errors.New("not written by expertd")

// versionName is the version directory of the expert cid written with
// the dtype and base model fill (Policy.CheckHeader): the CID, then a tag
// of the settings, so other settings never rewrite a directory in use.
func versionName(cid, dtype, fill string) string {
	sum := sha256.Sum256([]byte(dtype + "\x00" + fill))
	return cid + "-" + hex.EncodeToString(sum[:4])
}

// versionCID returns the CID a version directory name starts with.
func versionCID(v string) (string, bool) {
	c, tag, ok := strings.Cut(v, "-")
	return c, ok && c != "" && len(tag) == 8 && !strings.ContainsAny(v, `/\`)
}

// LoRAIntID is the vLLM lora_int_id of an expert: stable for its CID,
// in [1, 2^31-1]. vLLM overwrites the id a resolver returns, and numbers
// its API loads itself; the id only has to be positive.
func LoRAIntID(cid string) int64 {
	sum := sha256.Sum256([]byte(cid))
	return int64(binary.BigEndian.Uint32(sum[:4])&0x7fffffff) | 1
}

// linked returns the version an adapter name points at: fs.ErrNotExist
// if the name is free, errForeign if it is not expertd's link.
func (h *Handoff) linked(name string) (string, error) {
	link := filepath.Join(h.dir, name)
	fi, err := os.Lstat(link)
	if err != nil {
		return "", err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return "", errForeign
	}
	target, err := os.Readlink(link)
	if err != nil {
		return "", err
	}
	dir, v := filepath.Split(target)
	if _, ok := versionCID(v); !ok || dir != VersionsDir+string(filepath.Separator) {
		return "", errForeign
	}
	return v, nil
}

// Bound returns the CID the adapter name (an expert's name, sanitized
// here) is bound to: the expert its link points at.
func (h *Handoff) Bound(name string) (string, bool) {
	sname, err := SanitizeName(name)
	if h.dir == "" || err != nil {
		return "", false
	}
	v, err := h.linked(sname)
	if err != nil {
		return "", false
	}
	return versionCID(v)
}

// caseVariant returns expertd's link in the adapters directory whose name
// is sname under another case, if there is one.
func (h *Handoff) caseVariant(sname string) (string, bool) {
	names, err := h.links()
	if err != nil {
		return "", false
	}
	for n := range names {
		if n != sname && strings.EqualFold(n, sname) {
			return n, true
		}
	}
	return "", false
}

// Holder returns the marker of the version the adapter name (an expert's
// name, sanitized here; the same name under another case counts) points
// at: the expert holding the name and, if it is a version of a line, its
// publisher and version. A version whose marker is unreadable gives its
// CID only.
func (h *Handoff) Holder(name string) (Marker, bool) {
	sname, err := SanitizeName(name)
	if h.dir == "" || err != nil {
		return Marker{}, false
	}
	v, err := h.linked(sname)
	if errors.Is(err, fs.ErrNotExist) {
		if other, ok := h.caseVariant(sname); ok {
			v, err = h.linked(other)
		}
	}
	if err != nil {
		return Marker{}, false
	}
	c, ok := versionCID(v)
	if !ok {
		return Marker{}, false
	}
	m, err := readMarker(h.versionDir(v))
	if err != nil || m.CID != c {
		m = Marker{CID: c}
	}
	return m, true
}

// point makes the adapter name point at version v with one rename(2):
// a reader sees the old version or the new one, never nothing. A
// directory someone put under the name meanwhile is not replaced.
func (h *Handoff) point(name, v string) error {
	tmp, err := h.tempName("link-")
	if err != nil {
		return err
	}
	if err := os.Symlink(filepath.Join(VersionsDir, v), tmp); err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(h.dir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("handoff: %w", err)
	}
	_ = atomicfile.SyncDir(h.dir)
	return nil
}

// tempName returns an unused path in the adapters directory for a
// temporary file, directory or link (swept by New).
func (h *Handoff) tempName(kind string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("handoff: %w", err)
	}
	return filepath.Join(h.dir, tempPrefix+kind+hex.EncodeToString(b[:])), nil
}

// versionDir is the path of version v as expertd sees it.
func (h *Handoff) versionDir(v string) string { return filepath.Join(h.dir, VersionsDir, v) }

// serverPath is the path of version v as the inference server sees it
// (Options.ServerDir): the lora_path of vLLM's load requests.
func (h *Handoff) serverPath(v string) string { return filepath.Join(h.serverDir, VersionsDir, v) }

// retire records that no name points at version v any more; the janitor
// deletes it Options.Grace later.
func (h *Handoff) retire(v string, now time.Time) {
	path := h.versionDir(v) + retiredSuffix
	if err := writeFileSync(path, []byte(now.UTC().Format(time.RFC3339Nano)+"\n")); err != nil {
		h.log.Warn("marking a version to delete", "version", v, slogutil.Err(err))
	}
}

// links returns the versions the adapter names point at, by name.
func (h *Handoff) links() (map[string]string, error) {
	ents, err := os.ReadDir(h.dir)
	if err != nil {
		return nil, fmt.Errorf("handoff: adapters dir: %w", err)
	}
	out := map[string]string{}
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink == 0 || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if v, err := h.linked(e.Name()); err == nil {
			out[e.Name()] = v
		}
	}
	return out, nil
}

// janitor deletes the version directories no name has pointed at for
// Options.Grace, marks those found unpointed without a mark (written
// before a crash, say), and unmarks those pointed at again. It holds
// h.fsMu, as every step that writes or links a version does.
func (h *Handoff) janitor(now time.Time) {
	h.fsMu.Lock()
	defer h.fsMu.Unlock()
	names, err := h.links()
	if err != nil {
		h.log.Warn("cleaning up old versions", slogutil.Err(err))
		return
	}
	inUse := map[string]bool{}
	for _, v := range names {
		inUse[v] = true
	}
	vdir := filepath.Join(h.dir, VersionsDir)
	ents, err := os.ReadDir(vdir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			h.log.Warn("cleaning up old versions", slogutil.Err(err))
		}
		return
	}
	dirs := map[string]bool{}
	for _, e := range ents {
		if e.IsDir() {
			dirs[e.Name()] = true
		}
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, tempPrefix):
			os.RemoveAll(filepath.Join(vdir, name)) // an interrupted write
		case strings.HasSuffix(name, retiredSuffix):
			v := strings.TrimSuffix(name, retiredSuffix)
			if !dirs[v] || inUse[v] {
				os.Remove(filepath.Join(vdir, name))
			}
		case e.IsDir() && !inUse[name]:
			h.expire(name, now)
		}
	}
}

// expire deletes the unpointed version v if its grace has passed, and
// marks it if it was not marked. Called by janitor.
func (h *Handoff) expire(v string, now time.Time) {
	mark := h.versionDir(v) + retiredSuffix
	b, err := os.ReadFile(mark)
	var since time.Time
	if err == nil {
		since, err = time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	}
	if err != nil {
		h.retire(v, now)
		return
	}
	if now.Sub(since) < h.grace {
		return
	}
	trash, err := h.tempName("rm-")
	if err == nil {
		err = os.Rename(h.versionDir(v), trash)
	}
	if err != nil {
		h.log.Warn("deleting an old version", "version", v, slogutil.Err(err))
		return
	}
	os.Remove(mark)
	if err := os.RemoveAll(trash); err != nil {
		h.log.Warn("deleting an old version", "version", v, slogutil.Err(err))
	}
	h.log.Info("old version deleted", "version", v)
}

// migrate turns the adapter directories of expertd releases that wrote
// DIR/<name>/ in place into version directories and links.
func (h *Handoff) migrate() error {
	ents, err := os.ReadDir(h.dir)
	if err != nil {
		return fmt.Errorf("handoff: adapters dir: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(h.dir, e.Name())
		m, err := readMarker(dir)
		if err != nil {
			continue // not expertd's
		}
		v := versionName(m.CID, m.DType, m.ServedModel)
		if err := os.MkdirAll(filepath.Join(h.dir, VersionsDir), 0o755); err != nil {
			return fmt.Errorf("handoff: %w", err)
		}
		if _, err := os.Lstat(h.versionDir(v)); err == nil {
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("handoff: %w", err)
			}
		} else if err := os.Rename(dir, h.versionDir(v)); err != nil {
			return fmt.Errorf("handoff: migrating %s: %w", dir, err)
		}
		if err := h.point(e.Name(), v); err != nil {
			return err
		}
		h.log.Info("adapter moved to a version directory", slogutil.Name(e.Name()), "version", v)
	}
	return nil
}
