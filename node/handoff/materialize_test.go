package handoff

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/expertd/expertd/compress/safetensors"
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
	h := newTestHandoff(t, Options{})
	dir, err := h.Materialize(context.Background(), cidA, "python/lora", opener(container(t, loraDir), nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(h.Dir(), "python_lora"); dir != want || !filepath.IsAbs(dir) {
		t.Fatalf("dir %s, want %s", dir, want)
	}
	if got := readDirNames(t, h.Dir()); len(got) != 1 || got[0] != "python_lora" {
		t.Fatalf("adapters dir holds %v", got)
	}
	if got := readDirNames(t, dir); strings.Join(got, " ") != ".expertd.json adapter_config.json adapter_model.safetensors" {
		t.Fatalf("adapter dir holds %v", got)
	}
	want, _ := os.ReadFile(filepath.Join(fixtures, loraDir, "adapter_config.json"))
	got, _ := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if !bytes.Equal(got, want) {
		t.Error("adapter_config.json differs from the source without a served model")
	}
	src := tensors(t, filepath.Join(fixtures, loraDir))
	out := tensors(t, dir)
	if len(out) != len(src) {
		t.Fatalf("%d tensors, want %d", len(out), len(src))
	}
	for name, dt := range src {
		if out[name] != dt {
			t.Errorf("tensor %s: dtype %s, want the source's %s", name, out[name], dt)
		}
	}
	m, err := readMarker(dir)
	if err != nil || m != (Marker{CID: cidA, Name: "python/lora", PeftType: "LORA"}) {
		t.Errorf("marker %+v, %v", m, err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o755 {
		t.Errorf("dir mode %v, want 0755 (the server may run as another user)", st.Mode())
	}
	if s := h.Stats(); s.Materialized != 1 {
		t.Errorf("stats %+v", s)
	}
	if st, ok := status(h, "python_lora"); !ok || st.CID != cidA || st.Dir != dir || st.Expert != "python/lora" || st.Pending != "" {
		t.Errorf("status %+v", st)
	}
	if ms, err := h.Scan(); err != nil || len(ms) != 1 || ms["python_lora"].CID != cidA {
		t.Errorf("Scan = %v, %v", ms, err)
	}
}

func TestMaterializeServedModel(t *testing.T) {
	h := newTestHandoff(t, Options{ServedModel: "meta-llama/Llama-3.2-1B"})
	dir, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil))
	if err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile(filepath.Join(fixtures, loraDir, "adapter_config.json"))
	got, _ := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	want := bytes.Replace(src, []byte(`"base_model_name_or_path": null`), []byte(`"base_model_name_or_path": "meta-llama/Llama-3.2-1B"`), 1)
	if bytes.Equal(want, src) {
		t.Fatal("fixture has no base_model_name_or_path: null")
	}
	if !bytes.Equal(got, want) {
		t.Errorf("adapter_config.json:\n%s\nwant\n%s", got, want)
	}
	var cfg map[string]any
	if err := json.Unmarshal(got, &cfg); err != nil || cfg["base_model_name_or_path"] != "meta-llama/Llama-3.2-1B" || cfg["peft_type"] != "LORA" {
		t.Errorf("config %v, %v", cfg, err)
	}
}

func TestMaterializeDType(t *testing.T) {
	h := newTestHandoff(t, Options{DType: "bf16"})
	dir, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), nil))
	if err != nil {
		t.Fatal(err)
	}
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

func TestMaterializeIA3(t *testing.T) {
	h := newTestHandoff(t, Options{ServedModel: testModel})
	dir, err := h.Materialize(context.Background(), cidA, "c-ia3", opener(container(t, ia3Dir), nil))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err := json.Unmarshal(b, &cfg); err != nil || cfg["peft_type"] != "IA3" || cfg["base_model_name_or_path"] != testModel {
		t.Errorf("config %v, %v", cfg, err)
	}
	if len(tensors(t, dir)) != len(tensors(t, filepath.Join(fixtures, ia3Dir))) {
		t.Error("IA3 weights incomplete")
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
		t.Fatalf("second Materialize = %s, %v", dir2, err)
	}
	if opens != 1 {
		t.Errorf("the container was opened %d times, want 1", opens)
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
	h := newTestHandoff(t, Options{ServedModel: testModel})
	data := container(t, loraDir)
	br := &blockingReader{r: bytes.NewReader(data), n: len(data) / 2, reached: make(chan struct{}), release: make(chan struct{})}

	// A scanner checks, all along, that every adapter directory visible
	// under its real name is complete: vLLM's resolver may look at any time.
	stop := make(chan struct{})
	var scans, bad atomic.Int64
	var badMsg atomic.Value
	scanned := make(chan struct{})
	fake := newFakeVLLM(testModel)
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
				if err := fake.check(dir); err != nil {
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
		_, err := h.Materialize(context.Background(), cidA, "python", func() (io.ReadCloser, error) { return br, nil })
		done <- err
	}()
	<-br.reached
	names := readDirNames(t, h.Dir())
	if len(names) != 1 || !strings.HasPrefix(names[0], ".expertd-tmp-") {
		t.Errorf("half way through, the adapters dir holds %v; want only a temporary dir", names)
	}
	close(br.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if names := readDirNames(t, h.Dir()); len(names) != 1 || names[0] != "python" {
		t.Errorf("after Materialize, the adapters dir holds %v", names)
	}
	s := scans.Load()
	eventually(t, "the scanner to see the result", func() bool { return scans.Load() >= s+2 })
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
	if names := readDirNames(t, h.Dir()); len(names) != 0 {
		t.Errorf("failed Materialize calls left %v", names)
	}
	if s := h.Stats(); s.Materialized != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestMaterializeRewritesOnNewSettings(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	h1 := newTestHandoff(t, Options{Dir: dir})
	if _, err := h1.Materialize(ctx, cidA, "python", opener(container(t, loraDir), nil)); err != nil {
		t.Fatal(err)
	}
	// A leftover of an interrupted run is swept by New.
	if err := os.Mkdir(filepath.Join(dir, ".expertd-tmp-123"), 0o700); err != nil {
		t.Fatal(err)
	}
	h2 := newTestHandoff(t, Options{Dir: dir, ServedModel: testModel, DType: "f16"})
	if names := readDirNames(t, dir); len(names) != 1 {
		t.Errorf("New left %v", names)
	}
	adir, err := h2.Materialize(ctx, cidA, "python", opener(container(t, loraDir), nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := newFakeVLLM(testModel).check(adir); err != nil {
		t.Errorf("rewritten adapter: %v", err)
	}
	for name, dt := range tensors(t, adir) {
		if dt != "F16" {
			t.Errorf("%s is %s", name, dt)
		}
	}
	if names := readDirNames(t, dir); len(names) != 1 {
		t.Errorf("the rewrite left %v", names)
	}
	if s := h2.Stats(); s.Materialized != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestDisabled(t *testing.T) {
	h, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Materialize(context.Background(), cidA, "x", nil); !errors.Is(err, ErrDisabled) {
		t.Errorf("Materialize: %v", err)
	}
	if err := h.Remove(context.Background(), cidA, "x"); !errors.Is(err, ErrDisabled) {
		t.Errorf("Remove: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Serve(ctx); err != nil {
		t.Errorf("Serve: %v", err)
	}
}
