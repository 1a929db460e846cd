package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/expertd/expertd/internal/atomicfile"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/expertname"
	"github.com/expertd/expertd/node/gossip"
)

// VersionsFile, in the data dir, holds the last version this node gave
// each of its names, so that no number is given twice, restarts included.
const VersionsFile = "versions.json"

// maxVersionsFile bounds what is read of VersionsFile: some 100,000 names.
const maxVersionsFile = 16 << 20

// versionCounters are this node's lines: per name (by expertname.Key), the
// name as it publishes it and the last version it gave. It is safe for
// concurrent use; the file is read on first use.
type versionCounters struct {
	path string

	mu     sync.Mutex
	loaded bool
	m      map[string]versionCounter
}

type versionCounter struct {
	Name string `json:"name"`
	Last uint64 `json:"last"`
}

// versionsDoc is the content of VersionsFile.
type versionsDoc struct {
	Version int                       `json:"version"` // of the format: 1
	Names   map[string]versionCounter `json:"names"`   // by expertname.Key
}

func newVersionCounters(dataDir string) *versionCounters {
	return &versionCounters{path: filepath.Join(dataDir, VersionsFile)}
}

// load reads the file once. c.mu must be held.
func (c *versionCounters) load() error {
	if c.loaded {
		return nil
	}
	f, err := os.Open(c.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.m, c.loaded = map[string]versionCounter{}, true
		return nil
	case err != nil:
		return fmt.Errorf("versions: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxVersionsFile+1))
	if err != nil {
		return fmt.Errorf("versions: %w", err)
	}
	if c.m, err = decodeVersions(b); err != nil {
		return fmt.Errorf("versions: %s: %w", c.path, err)
	}
	c.loaded = true
	return nil
}

// decodeVersions parses VersionsFile, checking every entry.
func decodeVersions(b []byte) (map[string]versionCounter, error) {
	if len(b) > maxVersionsFile {
		return nil, fmt.Errorf("larger than %d bytes", maxVersionsFile)
	}
	var doc versionsDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if doc.Version != 1 {
		return nil, fmt.Errorf("format version %d, want 1", doc.Version)
	}
	for k, v := range doc.Names {
		if err := gossip.CheckName(v.Name); err != nil || v.Name == "" || expertname.Key(v.Name) != k {
			return nil, fmt.Errorf("name %q under %q", v.Name, k)
		}
		if v.Last == 0 || v.Last > gossip.MaxVersion {
			return nil, fmt.Errorf("%q: version %d", v.Name, v.Last)
		}
	}
	if doc.Names == nil {
		doc.Names = map[string]versionCounter{}
	}
	return doc.Names, nil
}

// save writes the counters: a new file renamed over the old. c.mu must be
// held.
func (c *versionCounters) save() error {
	b, err := json.MarshalIndent(versionsDoc{Version: 1, Names: c.m}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(c.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("versions: %w", err)
	}
	return nil
}

// spelling returns how this node publishes the name that is name under
// expertname.Key, if it published one.
func (c *versionCounters) spelling(name string) (string, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.load(); err != nil {
		return "", false, err
	}
	v, ok := c.m[expertname.Key(name)]
	return v.Name, ok, nil
}

// next gives name its next version: one more than the last this node gave
// it and than floor (the newest version of its line known elsewhere), and
// saves it before returning it, so that it is never given again. A number
// whose publication then fails is lost: versions may skip numbers.
func (c *versionCounters) next(name string, floor uint64) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.load(); err != nil {
		return 0, err
	}
	k := expertname.Key(name)
	v := c.m[k]
	if v.Name != "" && v.Name != name {
		return 0, fmt.Errorf("versions: %q is published as %q", name, v.Name)
	}
	n := max(v.Last, floor) + 1
	if n > gossip.MaxVersion {
		return 0, fmt.Errorf("versions: %q has no version left", name)
	}
	c.m[k] = versionCounter{Name: name, Last: n}
	if err := c.save(); err != nil {
		c.m[k] = v
		return 0, err
	}
	return n, nil
}

// signVersion signs a, this node's new expert, as the next version of its
// line of a.Name: one more than the last version this node gave the name
// (VersionsFile), than any of the line it holds and than any the swarm
// announced (a data dir restored from an old backup must not give a
// number twice: peers would refuse it). The name must be spelled as this
// node publishes it (a name that is the same under expertname.Key but
// spelled otherwise is refused: ErrConflict). The metadata are checked
// before a number is taken.
func (n *Node) signVersion(a gossip.Announcement) ([]byte, error) {
	dry := a
	dry.Version = gossip.MaxVersion // the largest envelope it can make
	if _, err := gossip.SignPublication(n.key, dry); err != nil {
		if errors.Is(err, gossip.ErrInvalid) || errors.Is(err, gossip.ErrTooLarge) || errors.Is(err, gossip.ErrPublication) {
			return nil, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
		}
		return nil, err
	}
	spelled, ok, err := n.lines.counters.spelling(a.Name)
	if err != nil {
		return nil, err
	}
	ln := gossip.LineOf(a)
	floor := n.latestHeld()[ln]
	for _, v := range n.versionsOf(a.Name) {
		if v.a.Publisher == n.p2p.ID() && !ok {
			spelled, ok = v.a.Name, true // the counters were lost: the store remembers
		}
	}
	if ok && spelled != a.Name {
		return nil, fmt.Errorf("%w: %q is the name %q this node publishes (names are compared sanitized and case-folded: docs/names.md); publish it as %q",
			api.ErrConflict, a.Name, spelled, spelled)
	}
	if v, ok := n.gossip.LatestVersion(ln); ok {
		floor = max(floor, v)
	}
	if a.Version, err = n.lines.counters.next(a.Name, floor); err != nil {
		return nil, err
	}
	return gossip.SignPublication(n.key, a)
}
