package store

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/expert"
)

func entryFile(e *env, c cid.Cid) string {
	return filepath.Join(e.dir, "experts", c.String()+entryExt)
}

// TestCorruptEntryRebuilt: an unreadable index entry is rebuilt from the
// blocks at Open and logged; one whose blocks are gone is set aside; the
// others are untouched.
func TestCorruptEntryRebuilt(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	ctr, params := container(t)
	small := add(t, s, ctr, Meta{Metadata: expert.Metadata{Name: "ia3"}, Publisher: "peer"})
	// A DAG whose first leaf starts with the container header: enough to
	// rebuild from, and it exercises the dag-pb walk.
	big := append(bytes.Clone(ctr), testutil.RandomBytes(5<<20, 1)...)
	bigRoot := add(t, s, big, Meta{Metadata: expert.Metadata{Name: "big"}})
	lost := add(t, s, testutil.RandomBytes(3<<20, 2), Meta{Metadata: expert.Metadata{Name: "lost"}})
	intact := add(t, s, testutil.RandomBytes(1000, 3), Meta{Metadata: expert.Metadata{Name: "intact"}, Publisher: "me"})
	intactMeta, _ := s.Get(intact)
	s.Close()

	for _, c := range []cid.Cid{small, bigRoot, lost} {
		if err := os.WriteFile(entryFile(e, c), []byte(`{"cid": "bafy`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(blockFile(s, layout(t, testutil.RandomBytes(3<<20, 2)).Leaves[1].Cid)); err != nil {
		t.Fatal(err)
	}

	s = e.open()
	for _, c := range []cid.Cid{small, bigRoot} {
		m, err := s.Get(c)
		if err != nil {
			t.Fatalf("entry %s not rebuilt: %v", c, err)
		}
		if m.CID != c.String() || m.PeftType != "IA3" || m.Params != params || m.Density != compress.DefaultDensity ||
			!slices.Equal(m.TargetModules, []string{"qkv", "fc2"}) || m.Name != "" || m.Publisher != "" || !m.Pinned {
			t.Errorf("rebuilt entry %+v", m)
		}
	}
	if m, _ := s.Get(small); m.Size != int64(len(ctr)) {
		t.Errorf("rebuilt size %d, want %d", m.Size, len(ctr))
	}
	if m, _ := s.Get(bigRoot); m.Size != int64(len(big)) {
		t.Errorf("rebuilt size %d, want %d", m.Size, len(big))
	}
	if !bytes.Equal(readAll(t, s, bigRoot), big) {
		t.Error("rebuilt expert reads back wrong")
	}
	if indexed(s, lost) {
		t.Error("an expert with a missing block was rebuilt")
	}
	if _, err := os.Stat(entryFile(e, lost) + corruptExt); err != nil {
		t.Errorf("unrebuildable entry not set aside: %v", err)
	}
	m, err := s.Get(intact)
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, m, intactMeta)

	log := e.log.String()
	if strings.Count(log, "rebuilt from the blocks") != 2 || !strings.Contains(log, "set aside") {
		t.Errorf("log does not report the repairs:\n%s", log)
	}
	r, err := s.Verify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || len(r.SetAside) != 1 || r.Experts != 3 {
		t.Errorf("Verify after rebuild: %+v", r)
	}

	s.Close() // the rebuilt entries were saved
	e.log = &logBuffer{}
	s = e.open()
	if m, err := s.Get(small); err != nil || m.PeftType != "IA3" {
		t.Fatalf("rebuilt entry not saved: %+v, %v", m, err)
	}
}

func TestEntryWithWrongNameSetAside(t *testing.T) {
	e := newEnv(t, 0)
	s := e.open()
	a := add(t, s, testutil.RandomBytes(100, 1), Meta{Metadata: expert.Metadata{Name: "a"}})
	b := add(t, s, testutil.RandomBytes(100, 2), Meta{Metadata: expert.Metadata{Name: "b"}})
	s.Close()
	// a's entry copied under b's name: it names the wrong expert.
	ea, err := os.ReadFile(entryFile(e, a))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(entryFile(e, b), ea, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "experts", "junk.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = e.open()
	if m, err := s.Get(b); err != nil || m.Name != "" || !m.Pinned {
		t.Fatalf("entry of b: %+v, %v; want rebuilt (not a container, so only size)", m, err)
	}
	if m, _ := s.Get(a); m.Name != "a" {
		t.Fatalf("entry of a: %+v", m)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "experts", "junk.json"+corruptExt)); err != nil {
		t.Fatalf("junk.json not set aside: %v", err)
	}
}
