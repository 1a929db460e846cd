package handoff

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/internal/testutil"
)

const (
	fixtures  = "../../compress/testdata/peft"
	loraDir   = "python-lora-r16"
	ia3Dir    = "c-ia3"
	testModel = "gpt2-tiny"

	waitFor = 10 * time.Second // bound of a testutil.Eventually
)

var (
	containersMu sync.Mutex
	containers   = map[string][]byte{}
)

// container returns the .cpeft container of a fixture adapter, encoded once.
func container(t testing.TB, fixture string) []byte {
	t.Helper()
	containersMu.Lock()
	defer containersMu.Unlock()
	if b, ok := containers[fixture]; ok {
		return b
	}
	src, err := compress.Load(filepath.Join(fixtures, fixture), "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, _, err := compress.Encode(&buf, src); err != nil {
		t.Fatal(err)
	}
	containers[fixture] = buf.Bytes()
	return buf.Bytes()
}

// opener returns an open func reading b, counting its calls in *n if n is set.
func opener(b []byte, n *int) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		if n != nil {
			*n++
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
}

// newTestHandoff returns a Handoff on a fresh directory with a fast backoff.
func newTestHandoff(t *testing.T, o Options) *Handoff {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Backoff == 0 {
		o.Backoff, o.MaxBackoff = 2*time.Millisecond, 20*time.Millisecond
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// serve runs h.Serve until the test ends.
func serve(t *testing.T, h *Handoff) {
	t.Helper()
	testutil.Serve(t, h.Serve)
}

// status returns name's AdapterStatus, ok false if h does not know it.
func status(h *Handoff, name string) (AdapterStatus, bool) {
	for _, s := range h.Status() {
		if s.Name == name {
			return s, true
		}
	}
	return AdapterStatus{}, false
}

// containerWith returns the container of a fixture adapter whose
// adapter_config.json edit changed.
func containerWith(t testing.TB, fixture string, edit func(cfg []byte) []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(fixtures, fixture, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "adapter_config.json" {
			b = edit(b)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := compress.Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, _, err := compress.Encode(&buf, src); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// withBase returns a fixture config edit setting base_model_name_or_path.
func withBase(base string) func([]byte) []byte {
	return func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"base_model_name_or_path": null`), []byte(`"base_model_name_or_path": "`+base+`"`), 1)
	}
}
