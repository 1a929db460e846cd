package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/expert"
	"github.com/expertd/expertd/node/unixfs"
)

// crashCase is one store call whose crash points are tried: setup brings
// the store to the old state, call makes the new one.
type crashCase struct {
	name  string
	quota int64
	fresh bool // call opens the store itself, in a directory that does not exist yet
	setup func(t *testing.T, s *Store)
	call  func(s *Store) error
	watch []cid.Cid // blocks whose presence is part of the state
	// partial: call is not atomic as a whole (an eviction, then an index
	// entry); each expert is as in the old or the new state, or gone.
	partial bool
}

// The experts the cases use: a small one (one raw block), a multi-leaf one
// (three leaves and a root node) and a lone block, as a fetch puts it.
var (
	smallExpert = testutil.RandomBytes(100<<10, 1)
	bigExpert   = testutil.RandomBytes(2<<20+1, 2)
	loneBlock   = testutil.RandomBytes(200<<10, 3)
)

func crashCases() []crashCase {
	addSmall := func(t *testing.T, s *Store) { add(t, s, smallExpert, Meta{Metadata: expert.Metadata{Name: "small"}}) }
	addBig := func(s *Store) error {
		_, err := s.Add(context.Background(), bytes.NewReader(bigExpert), Meta{Metadata: expert.Metadata{Name: "big"}})
		return err
	}
	smallRoot := rawCID(smallExpert)
	return []crashCase{
		{name: "FirstOpenThenPutBlock", fresh: true, watch: []cid.Cid{rawCID(loneBlock)},
			call: func(s *Store) error { return s.PutBlock(rawCID(loneBlock), loneBlock) }},
		{name: "PutBlock", setup: addSmall, watch: []cid.Cid{rawCID(loneBlock)},
			call: func(s *Store) error { return s.PutBlock(rawCID(loneBlock), loneBlock) }},
		{name: "AddMultiLeaf", setup: addSmall, call: addBig},
		{name: "Complete", setup: addSmall, call: func(s *Store) error {
			l, err := unixfs.Build(bytes.NewReader(bigExpert))
			if err != nil {
				return err
			}
			if err := putDAG(s, l, bigExpert); err != nil {
				return err
			}
			return s.Complete(context.Background(), l.Root, Meta{Metadata: expert.Metadata{Name: "fetched"}})
		}},
		{name: "Update", setup: addSmall, call: func(s *Store) error {
			return s.Update(smallRoot, func(m *Meta) { m.Name, m.Pinned = "renamed", true })
		}},
		{name: "Remove", setup: func(t *testing.T, s *Store) {
			addSmall(t, s)
			if err := addBig(s); err != nil {
				t.Fatal(err)
			}
		}, call: func(s *Store) error { return s.Remove(smallRoot) }},
		{name: "AddEvicting", quota: 2<<20 + 50<<10, setup: addSmall, call: addBig, partial: true},
	}
}

// TestCrashAtEveryStep runs each crash case with the file layer recorded,
// checks the order of its calls (checkOrder), then for every prefix of
// them writes what a power cut there could leave (crashModel, strict and
// not) to a new directory and opens a store on it: no temporary file
// survives, every block matches its CID, every indexed expert reads whole,
// and the store is in the old state or the new one; after the last call,
// the new one. It fails if a block or an entry is written in place, or
// an fsync is missing.
func TestCrashAtEveryStep(t *testing.T) {
	for _, c := range crashCases() {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "store")
			e := newEnv(t, c.quota)
			e.dir = dir
			rec := &recFS{root: root}
			e.opts.fs = rec
			var s *Store
			old := capture(openEmpty(t), c.watch)
			if !c.fresh {
				s = e.open()
				if c.setup != nil {
					c.setup(t, s)
				}
				old = capture(s, c.watch)
			}
			base := newCrashModel(t, root)
			rec.take()
			if c.fresh {
				s = e.open()
			}
			if err := c.call(s); err != nil {
				t.Fatal(err)
			}
			ops := rec.take()
			if err := checkOrder(ops); err != nil {
				t.Errorf("%v\ncalls:\n%s", err, opList(ops))
			}
			want := capture(s, c.watch)
			if want == old {
				t.Fatal("the call changed nothing")
			}
			for k := 0; k <= len(ops); k++ {
				base.apply(opAt(ops, k-1))
				for _, strict := range []bool{true, false} {
					got, err := reopenCrashed(t, base, strict, c.watch)
					what := fmt.Sprintf("crash after %d of %d calls (strict %v), the last %v", k, len(ops), strict, opAt(ops, k-1))
					switch {
					case err != nil:
						t.Fatalf("%s: %v", what, err)
					case k == len(ops) && got != want:
						t.Fatalf("%s: the call returned but the store lost it:\n got %s\nwant %s", what, got, want)
					case got != old && got != want && !(c.partial && within(got, old, want)):
						t.Fatalf("%s: neither the old state nor the new:\n got %s\n old %s\n new %s", what, got, old, want)
					}
				}
			}
			t.Logf("%d calls, %d crash states", len(ops), 2*(len(ops)+1))
		})
	}
}

// openEmpty opens an empty store, closed at cleanup.
func openEmpty(t *testing.T) *Store {
	s, err := Open(t.TempDir(), Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// opAt returns ops[i], or no call when i < 0.
func opAt(ops []op, i int) op {
	if i < 0 {
		return op{kind: "none"}
	}
	return ops[i]
}

func opList(ops []op) string {
	var b strings.Builder
	for i, o := range ops {
		fmt.Fprintf(&b, "%3d %v\n", i, o)
	}
	return b.String()
}

// reopenCrashed writes the crash state of m to a new directory, opens a
// store on it and returns its state, or what is wrong with it.
func reopenCrashed(t *testing.T, m *crashModel, strict bool, watch []cid.Cid) (string, error) {
	root := t.TempDir()
	m.write(t, root, strict)
	dir := filepath.Join(root, "store")
	s, err := Open(dir, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return "", fmt.Errorf("Open: %w", err)
	}
	defer s.Close()
	if left := tempFiles(t, dir); len(left) > 0 {
		return "", fmt.Errorf("temporary files after Open: %v", left)
	}
	r, err := s.Verify(context.Background())
	if err != nil || !r.OK() || len(r.SetAside) > 0 {
		return "", fmt.Errorf("Verify = %+v, %v", r, err)
	}
	return capture(s, watch), nil
}

// capture describes what s holds: each index entry and a hash of its
// expert's bytes, and whether each watched block is stored. It reads the
// blocks directly: opening an expert would count as a use and write its
// entry.
func capture(s *Store, watch []cid.Cid) string {
	var lines []string
	for _, m := range s.List() {
		entry, _ := encodeMeta(m)
		lines = append(lines, fmt.Sprintf("expert %s bytes %s", bytes.Join(bytes.Fields(entry), nil), contentHash(s, m.CID)))
	}
	for _, c := range watch {
		ok, err := s.HasBlock(c)
		lines = append(lines, fmt.Sprintf("block %s %v %v", c, ok, err))
	}
	slices.Sort(lines)
	return strings.Join(lines, "; ")
}

// contentHash returns a hash of the bytes of the expert under root, or
// why they cannot be read.
func contentHash(s *Store, root string) string {
	c, err := cid.Decode(root)
	if err != nil {
		return err.Error()
	}
	l, err := s.Layout(context.Background(), c)
	if err != nil {
		return err.Error()
	}
	h := sha256.New()
	for _, lf := range l.Leaves {
		b, err := s.GetBlock(lf.Cid)
		if err != nil {
			return err.Error()
		}
		h.Write(b)
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:8])
}

// within reports whether each line of got is in old or in new.
func within(got, old, new string) bool {
	for _, l := range strings.Split(got, "; ") {
		if l != "" && !slices.Contains(strings.Split(old, "; "), l) && !slices.Contains(strings.Split(new, "; "), l) {
			return false
		}
	}
	return true
}

// TestWriteFailureChangesNothing fails each call to the file layer of each
// crash case in turn: the store call fails, leaves no temporary file, and
// the store, live and reopened, is in the old state or (when only a final
// directory fsync failed, say) the new one.
func TestWriteFailureChangesNothing(t *testing.T) {
	for _, c := range crashCases() {
		if c.fresh {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			var want string
			for k := 0; ; k++ {
				e := newEnv(t, c.quota)
				rec := &recFS{root: filepath.Dir(e.dir)}
				e.opts.fs = rec
				s := e.open()
				c.setup(t, s)
				old := capture(s, c.watch)
				if k == 0 { // the new state, with no fault
					if err := c.call(s); err != nil {
						t.Fatal(err)
					}
					want = capture(s, c.watch)
					continue
				}
				rec.mu.Lock()
				rec.failAt = rec.calls + k
				rec.mu.Unlock()
				err := c.call(s)
				if err == nil {
					if k == 1 {
						t.Fatal("the call made no call to the file layer")
					}
					t.Logf("%d calls failed in turn", k-1)
					return
				}
				if !errors.Is(err, errInjected) {
					t.Fatalf("call %d failed: %v, which does not wrap the injected fault", k, err)
				}
				if left := tempFiles(t, e.dir); len(left) > 0 {
					t.Fatalf("call %d failed: temporary files left: %v", k, left)
				}
				check := func(when string, s *Store) {
					got := capture(s, c.watch)
					if got != old && got != want && !(c.partial && within(got, old, want)) {
						t.Fatalf("call %d failed (%v); %s, neither the old state nor the new:\n got %s\n old %s\n new %s", k, err, when, got, old, want)
					}
				}
				check("live", s)
				s.Close()
				e.opts.fs = nil
				s = e.open()
				if r, verr := s.Verify(t.Context()); verr != nil || !r.OK() || len(r.SetAside) > 0 {
					t.Fatalf("call %d failed (%v): reopened, Verify = %+v, %v", k, err, r, verr)
				}
				check("reopened", s)
			}
		})
	}
}
