package handoff

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/expertd/expertd/compress/safetensors"
	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/handoff/fakevllm"
)

const (
	cidA = "bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	cidB = "bafkreibbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// readDirNames lists dir.
func readDirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// tensors returns the tensor names and dtypes of an adapter directory.
func tensors(t *testing.T, dir string) map[string]safetensors.DType {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]safetensors.DType{}
	for _, ti := range f.Tensors {
		out[ti.Name] = ti.DType
	}
	return out
}

// treeHash hashes every file under dir with its name and mode.
func treeHash(t *testing.T, dir string) [32]byte {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		io.WriteString(h, p+info.Mode().String()+info.ModTime().String())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

func TestMaterializeLayout(t *testing.T) {
	h := newTestHandoff(t, Options{Policy: Policy{AcceptUnknownBase: true}})
	p, err := h.Materialize(context.Background(), cidA, "python/lora", opener(container(t, loraDir), nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(h.Dir(), "python_lora"); p.Dir != want || p.Name != "python_lora" {
		t.Fatalf("placed %+v, want the name python_lora at %s", p, want)
	}
	v := versionName(cidA, "", "")
	if p.Version != filepath.Join(h.Dir(), VersionsDir, v) || p.ServerPath != p.Version {
		t.Fatalf("placed %+v, want version %s", p, v)
	}
	if got := readDirNames(t, h.Dir()); !slices.Equal(got, []string{VersionsDir, "python_lora"}) {
		t.Fatalf("adapters dir holds %v", got)
	}
	if target, err := os.Readlink(p.Dir); err != nil || target != filepath.Join(VersionsDir, v) {
		t.Fatalf("the name links to %q (%v), want the relative %s", target, err, filepath.Join(VersionsDir, v))
	}
	// Through the link, as vLLM's filesystem resolver and LoRAX read it.
	if got := readDirNames(t, p.Dir); strings.Join(got, " ") != ".expertd.json adapter_config.json adapter_model.safetensors" {
		t.Fatalf("adapter dir holds %v", got)
	}
	want, _ := os.ReadFile(filepath.Join(fixtures, loraDir, "adapter_config.json"))
	got, _ := os.ReadFile(filepath.Join(p.Dir, "adapter_config.json"))
	if !bytes.Equal(got, want) {
		t.Error("adapter_config.json differs from the source without a served model")
	}
	src := tensors(t, filepath.Join(fixtures, loraDir))
	out := tensors(t, p.Dir)
	if len(out) != len(src) {
		t.Fatalf("%d tensors, want %d", len(out), len(src))
	}
	for name, dt := range src {
		if out[name] != dt {
			t.Errorf("tensor %s: dtype %s, want the source's %s", name, out[name], dt)
		}
	}
	m, err := readMarker(p.Version)
	if err != nil || m != (Marker{CID: cidA, Name: "python/lora", PeftType: "LORA"}) {
		t.Errorf("marker %+v, %v", m, err)
	}
	if st, _ := os.Stat(p.Version); st.Mode().Perm() != 0o755 {
		t.Errorf("dir mode %v, want 0755 (the server may run as another user)", st.Mode())
	}
	if s := h.Stats(); s.Materialized != 1 {
		t.Errorf("stats %+v", s)
	}
	if st, ok := status(h, "python_lora"); !ok || st.CID != cidA || st.Dir != p.Dir || st.Version != p.Version || st.Expert != "python/lora" || st.Pending != "" {
		t.Errorf("status %+v", st)
	}
	if ms, err := h.Scan(); err != nil || len(ms) != 1 || ms["python_lora"].CID != cidA {
		t.Errorf("Scan = %v, %v", ms, err)
	}
}

// TestMaterializeServerDir: vLLM is given the version directory as the
// server mounts the adapters directory.
func TestMaterializeServerDir(t *testing.T) {
	h := newTestHandoff(t, Options{ServerDir: "/srv/adapters", Policy: Policy{AcceptUnknownBase: true}})
	p, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := "/srv/adapters/" + VersionsDir + "/" + versionName(cidA, "", ""); p.ServerPath != want {
		t.Errorf("server path %s, want %s", p.ServerPath, want)
	}
	if _, err := New(Options{Dir: t.TempDir(), ServerDir: "relative/dir"}); err == nil {
		t.Error("New accepted a relative server dir")
	}
}

// TestMaterializeBase: the config is written as published when its base
// is the served model; a missing base is filled in only under
// accept_unknown_base; an alias is written as the served model; another
// base is refused and nothing is written.
func TestMaterializeBase(t *testing.T) {
	const served = "meta-llama/Llama-3.2-1B"
	src, _ := os.ReadFile(filepath.Join(fixtures, loraDir, "adapter_config.json"))
	for _, c := range []struct {
		name, base string // base "" keeps the fixture's null
		p          Policy
		want       []byte // nil: refused
		reason     string
	}{
		{"served", served, Policy{ServedModel: served}, withBase(served)(src), ""},
		{"unknown, accepted", "", Policy{ServedModel: served, AcceptUnknownBase: true}, withBase(served)(src), ""},
		{"unknown", "", Policy{ServedModel: served}, nil, ReasonUnknownBase},
		{"alias", "/models/llama-1b", Policy{ServedModel: served, BaseAliases: []string{"/models/llama-1b"}}, withBase(served)(src), ""},
		{"other", "gpt2", Policy{ServedModel: served, AcceptUnknownBase: true}, nil, ReasonOtherBase},
	} {
		h := newTestHandoff(t, Options{Policy: c.p})
		data := container(t, loraDir)
		if c.base != "" {
			data = containerWith(t, loraDir, withBase(c.base))
		}
		var opens int
		p, err := h.Materialize(context.Background(), cidA, "python", opener(data, &opens))
		if c.want == nil {
			var r *Refusal
			if !errors.As(err, &r) || r.Reason != c.reason {
				t.Errorf("%s: %v, want a %s refusal", c.name, err, c.reason)
			}
			if names := readDirNames(t, filepath.Join(h.Dir(), VersionsDir)); len(names) != 0 || opens != 1 {
				t.Errorf("%s: refused, yet %v written after %d opens", c.name, names, opens)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, _ := os.ReadFile(filepath.Join(p.Dir, "adapter_config.json"))
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s: adapter_config.json:\n%s\nwant\n%s", c.name, got, c.want)
		}
	}
}

func TestMaterializeDType(t *testing.T) {
	h := newTestHandoff(t, Options{DType: "bf16"})
	p, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil))
	if err != nil {
		t.Fatal(err)
	}
	dir := p.Version
	out := tensors(t, dir)
	if len(out) != len(tensors(t, filepath.Join(fixtures, loraDir))) {
		t.Fatalf("%d tensors", len(out))
	}
	for name, dt := range out {
		if dt != "BF16" {
			t.Errorf("tensor %s is %s, want BF16", name, dt)
		}
	}
	if m, _ := readMarker(dir); m.DType != "BF16" {
		t.Errorf("marker dtype %q", m.DType)
	}
	if _, err := New(Options{Dir: t.TempDir(), DType: "int8"}); err == nil {
		t.Error("New accepted dtype int8")
	}
}

func TestMaterializeSameCIDTwice(t *testing.T) {
	h := newTestHandoff(t, Options{})
	var opens int
	open := opener(container(t, loraDir), &opens)
	dir, err := h.Materialize(context.Background(), cidA, "python", open)
	if err != nil {
		t.Fatal(err)
	}
	before := treeHash(t, h.Dir())
	dir2, err := h.Materialize(context.Background(), cidA, "python", open)
	if err != nil || dir2 != dir {
		t.Fatalf("second Materialize = %+v, %v", dir2, err)
	}
	if opens != 3 {
		t.Errorf("the container was opened %d times, want 3 (a header, the expert, a header)", opens)
	}
	if treeHash(t, h.Dir()) != before {
		t.Error("the second Materialize changed the adapters dir")
	}
	if s := h.Stats(); s.Materialized != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestMaterializeConflict(t *testing.T) {
	h := newTestHandoff(t, Options{})
	ctx := context.Background()
	if _, err := h.Materialize(ctx, cidA, "a/b", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	before := treeHash(t, h.Dir())
	var opens int
	for _, name := range []string{"a/b", "a_b", "a b"} { // all sanitize to a_b
		_, err := h.Materialize(ctx, cidB, name, opener(container(t, ia3Dir), &opens))
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), cidA) {
			t.Errorf("Materialize(%q) with another CID: %v, want ErrConflict naming %s", name, err, cidA)
		}
	}
	if opens != 0 {
		t.Errorf("a conflicting expert was opened %d times", opens)
	}
	if treeHash(t, h.Dir()) != before {
		t.Error("a conflicting Materialize changed the adapters dir")
	}

	// Directories expertd did not write are never replaced, even empty ones.
	mine := filepath.Join(h.Dir(), "mine")
	if err := os.MkdirAll(mine, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Materialize(ctx, cidB, "mine", opener(container(t, loraDir), nil)); !errors.Is(err, ErrConflict) {
		t.Errorf("Materialize over a foreign empty dir: %v, want ErrConflict", err)
	}
	if err := os.WriteFile(filepath.Join(mine, "adapter_config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Materialize(ctx, cidB, "mine", opener(container(t, loraDir), nil)); !errors.Is(err, ErrConflict) {
		t.Errorf("Materialize over a foreign adapter: %v, want ErrConflict", err)
	}
	if err := h.Remove(ctx, cidB, "mine"); !errors.Is(err, ErrConflict) {
		t.Errorf("Remove of a foreign adapter: %v, want ErrConflict", err)
	}
	if b, _ := os.ReadFile(filepath.Join(mine, "adapter_config.json")); string(b) != "{}" {
		t.Error("a foreign adapter was changed")
	}
	for _, name := range []string{"", "..", "../", "日本"} {
		if _, err := h.Materialize(ctx, cidB, name, opener(container(t, loraDir), nil)); !errors.Is(err, ErrName) {
			t.Errorf("Materialize(%q): %v, want ErrName", name, err)
		}
	}
}

// blockingReader returns the first n bytes of b, then blocks until release
// is closed.
type blockingReader struct {
	r       io.Reader
	n       int
	reached chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if b.n == 0 {
		b.once.Do(func() { close(b.reached) })
		<-b.release
		return b.r.Read(p)
	}
	p = p[:min(len(p), b.n)]
	n, err := b.r.Read(p)
	b.n -= n
	return n, err
}

func (b *blockingReader) Close() error { return nil }

func TestMaterializeNeverPartial(t *testing.T) {
	h := newTestHandoff(t, Options{Policy: Policy{ServedModel: testModel, AcceptUnknownBase: true}})
	data := container(t, loraDir)
	br := &blockingReader{r: bytes.NewReader(data), n: len(data) / 2, reached: make(chan struct{}), release: make(chan struct{})}

	// A scanner checks, all along, that every adapter directory visible
	// under its real name is complete: vLLM's resolver may look at any time.
	stop := make(chan struct{})
	var scans, bad atomic.Int64
	var badMsg atomic.Value
	scanned := make(chan struct{})
	fake := fakevllm.New(fakevllm.Options{Base: testBase})
	go func() {
		defer close(scanned)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ents, _ := os.ReadDir(h.Dir())
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") {
					continue
				}
				dir := filepath.Join(h.Dir(), e.Name())
				if err := fake.Check(dir); err != nil {
					bad.Add(1)
					badMsg.Store(err.Error())
				} else if _, err := readMarker(dir); err != nil {
					bad.Add(1)
					badMsg.Store(err.Error())
				}
			}
			scans.Add(1)
		}
	}()

	done := make(chan error, 1)
	go func() {
		opens := 0
		_, err := h.Materialize(context.Background(), cidA, "python", func() (io.ReadCloser, error) {
			if opens++; opens == 1 { // the header
				return io.NopCloser(bytes.NewReader(data)), nil
			}
			return br, nil
		})
		done <- err
	}()
	select { // a Materialize that fails before half way must fail the test, not hang it
	case <-br.reached:
	case err := <-done:
		t.Fatalf("Materialize ended before half the container was read: %v", err)
	}
	names := readDirNames(t, h.Dir())
	if len(names) != 2 || !strings.HasPrefix(names[0], ".expertd-tmp-") || names[1] != VersionsDir {
		t.Errorf("half way through, the adapters dir holds %v; want only a temporary dir", names)
	}
	close(br.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if names := readDirNames(t, h.Dir()); !slices.Equal(names, []string{VersionsDir, "python"}) {
		t.Errorf("after Materialize, the adapters dir holds %v", names)
	}
	s := scans.Load()
	testutil.Eventually(t, waitFor, "the scanner to see the result", func() bool { return scans.Load() >= s+2 })
	close(stop)
	<-scanned
	if bad.Load() != 0 {
		t.Errorf("the scanner saw %d incomplete adapters: %v", bad.Load(), badMsg.Load())
	}
}

func TestMaterializeBadContainer(t *testing.T) {
	h := newTestHandoff(t, Options{})
	data := container(t, loraDir)
	ctx := context.Background()
	for name, b := range map[string][]byte{
		"truncated": data[:len(data)/2],
		"garbage":   []byte("not a container"),
	} {
		if _, err := h.Materialize(ctx, cidA, name, opener(b, nil)); err == nil {
			t.Errorf("%s container: no error", name)
		}
	}
	if _, err := h.Materialize(ctx, cidA, "open-fails", func() (io.ReadCloser, error) { return nil, errors.New("boom") }); err == nil {
		t.Error("open failure: no error")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.Materialize(canceled, cidA, "canceled", opener(data, nil)); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	if names := readDirNames(t, h.Dir()); !slices.Equal(names, []string{VersionsDir}) {
		t.Errorf("failed Materialize calls left %v", names)
	}
	if names := readDirNames(t, filepath.Join(h.Dir(), VersionsDir)); len(names) != 0 {
		t.Errorf("failed Materialize calls left versions %v", names)
	}
	if s := h.Stats(); s.Materialized != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestMaterializeRewritesOnNewSettings: the same expert under other
// settings is a new version: the name moves to it, and the old version
// stays until its grace has passed.
func TestMaterializeRewritesOnNewSettings(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	h1 := newTestHandoff(t, Options{Dir: dir})
	p1, err := h1.Materialize(ctx, cidA, "python", opener(container(t, loraDir), nil))
	if err != nil {
		t.Fatal(err)
	}
	// A leftover of an interrupted run is swept by New.
	if err := os.Mkdir(filepath.Join(dir, ".expertd-tmp-123"), 0o700); err != nil {
		t.Fatal(err)
	}
	h2 := newTestHandoff(t, Options{Dir: dir, DType: "f16", Grace: time.Hour, Policy: Policy{ServedModel: testModel, AcceptUnknownBase: true}})
	if names := readDirNames(t, dir); !slices.Equal(names, []string{VersionsDir, "python"}) {
		t.Errorf("New left %v", names)
	}
	moved := time.Now()
	p2, err := h2.Materialize(ctx, cidA, "python", opener(container(t, loraDir), nil))
	if err != nil {
		t.Fatal(err)
	}
	if p2.Version == p1.Version {
		t.Fatalf("new settings wrote over the version in use, %s", p1.Version)
	}
	if err := fakevllm.New(fakevllm.Options{Base: testBase}).Check(p2.Dir); err != nil {
		t.Errorf("rewritten adapter: %v", err)
	}
	for name, dt := range tensors(t, p2.Dir) {
		if dt != "F16" {
			t.Errorf("%s is %s", name, dt)
		}
	}
	if s := h2.Stats(); s.Materialized != 1 {
		t.Errorf("stats %+v", s)
	}
	// The old version stays for the grace, then goes.
	if _, err := os.Stat(filepath.Join(p1.Version, "adapter_model.safetensors")); err != nil {
		t.Fatalf("old version deleted at once: %v", err)
	}
	// Its grace runs from when the name moved, during Materialize.
	for _, d := range []time.Duration{time.Minute, time.Hour - time.Second} {
		h2.janitor(moved.Add(d))
		if _, err := os.Stat(p1.Version); err != nil {
			t.Fatalf("old version deleted %v after the name moved, before its grace: %v", d, err)
		}
	}
	h2.janitor(time.Now().Add(time.Hour))
	if _, err := os.Stat(p1.Version); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old version after its grace: %v", err)
	}
	if names := readDirNames(t, filepath.Join(dir, VersionsDir)); !slices.Equal(names, []string{filepath.Base(p2.Version)}) {
		t.Errorf("versions left: %v", names)
	}
}
