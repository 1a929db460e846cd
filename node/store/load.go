package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/internal/slogutil"
	"github.com/expertd/expertd/node/unixfs"
)

// corruptExt is appended to the name of an index entry that could neither
// be read nor rebuilt; Open ignores such files.
const corruptExt = ".corrupt"

// load removes temporary files and reads the index. An entry that cannot
// be read is rebuilt from the blocks when its DAG is complete, and set
// aside otherwise; either way Open goes on.
func (s *Store) load(ctx context.Context) error {
	nb, err := s.removeTemp(s.blocksDir())
	if err != nil {
		return err
	}
	ne, err := s.removeTemp(s.expertsDir())
	if err != nil {
		return err
	}
	if nb+ne > 0 {
		s.log.Info("removed files of interrupted writes", slogutil.Path(s.dir), "files", nb+ne)
	}
	files, err := os.ReadDir(s.expertsDir())
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, f := range files {
		name := f.Name()
		if !strings.HasSuffix(name, entryExt) || !f.Type().IsRegular() {
			continue
		}
		root, err := cid.Decode(strings.TrimSuffix(name, entryExt))
		if err != nil || root.String()+entryExt != name {
			s.setAside(name, fmt.Errorf("file name is not a CID"))
			continue
		}
		if err := s.loadEntry(ctx, root); err != nil {
			return err
		}
	}
	return nil
}

// loadEntry indexes the expert under root from its entry file, or rebuilds
// the entry. It fails only if the store itself cannot be read.
func (s *Store) loadEntry(ctx context.Context, root cid.Cid) error {
	key := root.String()
	path := filepath.Join(s.expertsDir(), key+entryExt)
	data, err := os.ReadFile(path)
	var m Meta
	if err == nil {
		m, err = decodeMeta(root, data)
	}
	l, lerr := s.Layout(ctx, root)
	if err != nil {
		m, err = s.rebuild(ctx, root, path, err, l, lerr)
		if err != nil {
			return nil
		}
	}
	var blocks []blockRef
	if lerr != nil {
		s.log.Warn("indexed expert is incomplete; `expertd verify` reports it", slogutil.CID(key), slogutil.Name(m.Name), slogutil.Err(lerr))
	} else {
		blocks = dagBlocks(l)
	}
	s.entries[key] = &entry{meta: m, blocks: blocks}
	s.ref(blocks)
	return nil
}

// rebuild recovers the entry of root, which failed to load with cause,
// from the stored blocks when they are all there: the size from the DAG;
// peft type, params, density, base model, rank and target modules from the
// container header, if it has one that reads. Name and publisher are lost,
// and the expert is pinned since whether it was is lost too. l and err are
// what Layout returned for root. An expert that cannot be rebuilt has its
// entry set aside.
func (s *Store) rebuild(ctx context.Context, root cid.Cid, path string, cause error, l *unixfs.Layout, err error) (Meta, error) {
	key := root.String()
	if err == nil {
		var miss []string
		if miss, err = s.missing(dagBlocks(l)); err == nil && len(miss) > 0 {
			err = fmt.Errorf("%w: %d blocks missing", ErrIncomplete, len(miss))
		}
	}
	if err != nil {
		s.setAside(key+entryExt, fmt.Errorf("%w; cannot rebuild it: %w", cause, err))
		return Meta{}, err
	}
	var m Meta
	h, herr := s.header(ctx, l)
	if herr == nil {
		m = MetaFromHeader(h)
	}
	when := s.now()
	if fi, err := os.Stat(path); err == nil {
		when = fi.ModTime()
	}
	m.CID, m.Size, m.Added, m.LastUsed, m.Pinned = key, int64(l.Size), when, when, true
	if err := s.writeEntry(m); err != nil {
		s.log.Error("rebuilt index entry not saved", slogutil.CID(key), slogutil.Err(err))
	}
	s.log.Warn("unreadable index entry rebuilt from the blocks; name and publisher lost, expert pinned",
		slogutil.CID(key), "cause", cause, "peft_type", m.PeftType, "params", m.Params, slogutil.Bytes(m.Size), "header_error", herr)
	return m, nil
}

// setAside renames an entry file that cannot be used to <name>.corrupt.
func (s *Store) setAside(name string, cause error) {
	from := filepath.Join(s.expertsDir(), name)
	if err := s.fs.Rename(from, from+corruptExt); err != nil {
		s.log.Error("unusable index entry ignored, cannot be set aside", slogutil.Path(from), "cause", cause, slogutil.Err(err))
		return
	}
	s.log.Error("unusable index entry set aside", slogutil.Path(from+corruptExt), "cause", cause)
}
