package handoff

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/expertd/expertd/internal/atomicfile"
)

// MarkerFile, inside each adapter directory, records which expert it holds.
const MarkerFile = ".expertd.json"

// Marker is the content of MarkerFile.
type Marker struct {
	CID      string `json:"cid"`
	Name     string `json:"name"` // the expert's own name, before SanitizeName
	PeftType string `json:"peft_type"`
	DType    string `json:"dtype"` // as configured: "" for source
	// ServedModel is the base model written into adapter_config.json ("" if
	// the file is as published): Policy.CheckHeader's fill.
	ServedModel string `json:"served_model,omitempty"`
	// Publisher and Version place the expert in its publisher's line of
	// versions of its name (Version); empty for none.
	Publisher string `json:"publisher,omitempty"`
	Version   uint64 `json:"version,omitempty"`
}

// holding says which expert m is, for a message: "version 2 of publisher
// P's "team-sql"", or "expert <cid>" for one of no line.
func (m Marker) holding() string {
	if m.Version == 0 {
		return "expert " + m.CID
	}
	return fmt.Sprintf("version %d of publisher %s's %q", m.Version, m.Publisher, m.Name)
}

// errNoMarker: a directory exists but holds no marker (not ours).
var errNoMarker = errors.New("no " + MarkerFile)

// readMarker reads dir's marker: fs.ErrNotExist if dir does not exist,
// errNoMarker if it exists without a marker.
func readMarker(dir string) (Marker, error) {
	var m Marker
	b, err := os.ReadFile(filepath.Join(dir, MarkerFile))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Lstat(dir); serr != nil {
			return m, serr
		}
		return m, errNoMarker
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil || m.CID == "" {
		return m, fmt.Errorf("%s: malformed %s", dir, MarkerFile)
	}
	return m, nil
}

func writeMarker(dir string, m Marker) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return writeFileSync(filepath.Join(dir, MarkerFile), append(b, '\n'))
}

// Scan lists the adapter names expertd linked in the adapters directory,
// with the marker of the version each points at (a version whose marker
// is unreadable gives the name and the CID only), so that the daemon can
// remove those whose expert it no longer holds after a restart.
func (h *Handoff) Scan() (map[string]Marker, error) {
	if h.dir == "" {
		return nil, ErrDisabled
	}
	names, err := h.links()
	if err != nil {
		return nil, err
	}
	out := make(map[string]Marker, len(names))
	for name, v := range names {
		m, err := readMarker(h.versionDir(v))
		if c, _ := versionCID(v); err != nil || m.CID != c {
			m = Marker{CID: c, Name: name}
		}
		out[name] = m
	}
	return out, nil
}

// replaceMarker replaces dir's marker with m by a rename: a reader sees
// the old marker or the new one.
func replaceMarker(dir string, m Marker) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, MarkerFile), append(b, '\n'), 0o644)
}

// writeFileSync writes a new file and syncs it.
func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
