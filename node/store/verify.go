package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/node/unixfs"
)

// Report is what Verify found.
type Report struct {
	Blocks int   `json:"blocks"` // block files read and re-hashed
	Bytes  int64 `json:"bytes"`  // their total size
	// Corrupt lists the blocks whose content no longer matched their CID;
	// they have been removed.
	Corrupt []string `json:"corrupt,omitempty"`
	// Stray lists files under blocks/ that are not blocks (left alone).
	Stray []string `json:"stray,omitempty"`
	// Orphans counts the blocks no indexed expert uses: an unfinished
	// fetch's, or GC's to collect. They are not a problem.
	Orphans     int   `json:"orphans"`
	OrphanBytes int64 `json:"orphan_bytes"`
	Experts     int   `json:"experts"` // indexed experts checked
	// Incomplete lists the indexed experts that cannot be read in full.
	Incomplete []Problem `json:"incomplete,omitempty"`
	// SetAside lists index entries Open could neither read nor rebuild,
	// renamed to *.corrupt: their experts are no longer indexed.
	SetAside []string `json:"set_aside,omitempty"`
}

// Problem is an indexed expert that cannot be read in full.
type Problem struct {
	CID     string   `json:"cid"`
	Name    string   `json:"name,omitempty"`
	Missing []string `json:"missing,omitempty"` // blocks that are not stored
	Err     string   `json:"error,omitempty"`   // why its DAG could not be walked
}

// OK reports whether Verify found nothing wrong: no corrupt block, no stray
// file, every indexed expert complete. Orphans and set-aside entries were
// already dealt with and do not count.
func (r *Report) OK() bool {
	return len(r.Corrupt) == 0 && len(r.Stray) == 0 && len(r.Incomplete) == 0
}

// Verify re-hashes every stored block, removing those that no longer match
// their CID, then checks that every indexed expert has all its blocks. It
// returns an error only when the store cannot be read, or ctx ends; what
// it finds is in the Report. It holds the index lock only for snapshots,
// so the store stays usable meanwhile.
func (s *Store) Verify(ctx context.Context) (Report, error) {
	var r Report
	if err := s.check(); err != nil {
		return r, err
	}
	s.mu.Lock()
	roots := make([]Meta, 0, len(s.entries))
	for _, e := range s.entries {
		roots = append(roots, e.meta)
	}
	s.mu.Unlock()
	slices.SortFunc(roots, func(a, b Meta) int { return strings.Compare(a.CID, b.CID) })

	stray, err := s.walkBlocks(ctx, func(b storedBlock) error {
		data, err := s.readBlock(b.cid)
		switch {
		case errors.Is(err, ErrNotFound):
			return nil // removed meanwhile
		case errors.Is(err, ErrCorrupt): // already removed
		case err != nil: // unreadable: as good as corrupt
			_ = s.dropCorrupt(b.key, err)
		default:
			if err = unixfs.VerifyBlock(b.cid, data); err != nil {
				_ = s.dropCorrupt(b.key, err)
			}
		}
		if err != nil {
			r.Corrupt = append(r.Corrupt, b.key)
			return nil
		}
		r.Blocks++
		r.Bytes += int64(len(data))
		if !s.referenced(b.key) {
			r.Orphans++
			r.OrphanBytes += int64(len(data))
		}
		return nil
	})
	r.Stray = stray
	if err != nil {
		return r, err
	}

	for _, m := range roots {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		r.Experts++
		root, err := cid.Decode(m.CID)
		if err != nil { // cannot happen: entries are loaded by CID
			r.Incomplete = append(r.Incomplete, Problem{CID: m.CID, Name: m.Name, Err: err.Error()})
			continue
		}
		l, err := s.Layout(ctx, root)
		if err != nil {
			r.Incomplete = append(r.Incomplete, Problem{CID: m.CID, Name: m.Name, Err: err.Error()})
			continue
		}
		miss, err := s.missing(dagBlocks(l))
		if err != nil {
			return r, err
		}
		if len(miss) > 0 {
			r.Incomplete = append(r.Incomplete, Problem{CID: m.CID, Name: m.Name, Missing: miss})
		}
	}

	if files, err := os.ReadDir(s.expertsDir()); err == nil {
		for _, f := range files {
			if strings.HasSuffix(f.Name(), corruptExt) {
				r.SetAside = append(r.SetAside, filepath.Join(s.expertsDir(), f.Name()))
			}
		}
	}
	return r, nil
}

// referenced reports whether an indexed expert uses the block.
func (s *Store) referenced(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refs[key] > 0
}
