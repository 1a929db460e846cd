package handoff

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/expertd/expertd/node/handoff/fakevllm"
)

// TestMigrateOldLayout: an adapter written in place by an older expertd
// becomes a version directory and a link.
func TestMigrateOldLayout(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "python")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		b, _ := os.ReadFile(filepath.Join(fixtures, loraDir, f))
		if err := os.WriteFile(filepath.Join(old, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeMarker(old, Marker{CID: cidA, Name: "python", PeftType: "LORA"}); err != nil {
		t.Fatal(err)
	}
	h := newTestHandoff(t, Options{Dir: dir})
	v, err := h.linked("python")
	if err != nil || v != versionName(cidA, "", "") {
		t.Fatalf("python links to %q (%v)", v, err)
	}
	var opens int
	if _, err := h.Materialize(context.Background(), cidA, "python", opener(container(t, loraDir), &opens)); err != nil || opens != 1 {
		t.Errorf("Materialize after the migration: %v, %d opens (want the header only)", err, opens)
	}
}

// TestConcurrentNamesAndJanitor: names of one expert written at once,
// while the janitor runs with no grace, all end linked to one complete
// version.
func TestConcurrentNamesAndJanitor(t *testing.T) {
	h := newTestHandoff(t, Options{Grace: time.Nanosecond})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				h.janitor(time.Now().Add(time.Hour))
			}
		}
	})
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Go(func() {
			_, err := h.Materialize(context.Background(), cidA, "n"+strconv.Itoa(i), opener(container(t, loraDir), nil))
			errs <- err
		})
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	for i := range 4 {
		if err := fakevllm.New(fakevllm.Options{Base: testBase}).Check(filepath.Join(h.Dir(), "n"+strconv.Itoa(i))); err != nil {
			t.Errorf("n%d: %v", i, err)
		}
	}
	if vs := readDirNames(t, filepath.Join(h.Dir(), VersionsDir)); len(vs) != 1 {
		t.Errorf("versions %v, want one", vs)
	}
}
