package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/node/unixfs"
)

// clock is a test clock that moves one second forward on every reading, so
// every use of an expert has its own time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one test's store directory, clock and log.
type env struct {
	t     *testing.T
	dir   string
	clock *clock
	log   *logBuffer
	opts  Options
}

func newEnv(t *testing.T, quota int64) *env {
	e := &env{t: t, dir: t.TempDir(), clock: newClock(), log: &logBuffer{}}
	e.opts = Options{
		Quota:  quota,
		Logger: slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		now:    e.clock.now,
	}
	return e
}

// open opens the env's store; the test closes it at cleanup if still open.
func (e *env) open() *Store {
	e.t.Helper()
	s, err := Open(e.dir, e.opts)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

// rawCID returns the CID of b as a raw block.
func rawCID(b []byte) cid.Cid {
	d := sha256.Sum256(b)
	h, err := mh.Encode(d[:], mh.SHA2_256)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

func add(t *testing.T, s *Store, content []byte, m Meta) cid.Cid {
	t.Helper()
	c, err := s.Add(context.Background(), bytes.NewReader(content), m)
	if err != nil {
		t.Fatalf("Add(%s): %v", m.Name, err)
	}
	return c
}

func readAll(t *testing.T, s *Store, root cid.Cid) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), root)
	if err != nil {
		t.Fatalf("Open(%s): %v", root, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", root, err)
	}
	return b
}

func layout(t *testing.T, content []byte) *unixfs.Layout {
	t.Helper()
	l, err := unixfs.Build(bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// blockFile returns the path of block c in s.
func blockFile(s *Store, c cid.Cid) string {
	_, p := s.blockPath(c.String())
	return p
}

// flipByte corrupts one byte of a file in place.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// snapshot returns every file under dir and a hash of its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[strings.TrimPrefix(path, dir)] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, before, after map[string]string) {
	t.Helper()
	if maps.Equal(before, after) {
		return
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("removed: %s", k)
		} else if before[k] != after[k] {
			t.Errorf("changed: %s", k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("added: %s", k)
		}
	}
}

// tempFiles lists the temporary files under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), tmpPrefix) {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// container returns a real .cpeft container made from the IA3 fixture and
// its parameter count.
func container(t testing.TB) ([]byte, int64) {
	t.Helper()
	src, err := compress.Load("../../compress/testdata/peft/c-ia3", "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, _, err := compress.Encode(&buf, src); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), src.Params()
}

// sameMeta compares entries, times by instant.
func sameMeta(t *testing.T, got, want Meta) {
	t.Helper()
	if !got.Added.Equal(want.Added) || !got.LastUsed.Equal(want.LastUsed) {
		t.Errorf("%s: times %v/%v, want %v/%v", want.CID, got.Added, got.LastUsed, want.Added, want.LastUsed)
	}
	got.Added, got.LastUsed, want.Added, want.LastUsed = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	gb, _ := encodeMeta(got)
	wb, _ := encodeMeta(want)
	if !bytes.Equal(gb, wb) {
		t.Errorf("entry differs:\n got %s\nwant %s", gb, wb)
	}
}

func decodeRoot(s string) (cid.Cid, error) { return cid.Decode(s) }

// putDAG stores every block of l, content's layout, with PutBlock, as a
// fetch does.
func putDAG(s *Store, l *unixfs.Layout, content []byte) error {
	for _, n := range l.Nodes {
		if err := s.PutBlock(n.Cid, n.Data); err != nil {
			return err
		}
	}
	for _, lf := range l.Leaves {
		if err := s.PutBlock(lf.Cid, content[lf.Offset:lf.Offset+lf.Size]); err != nil {
			return err
		}
	}
	return nil
}
