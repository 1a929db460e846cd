package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/expert"
)

// TestKill9 kills a process that is writing to a store at an arbitrary
// moment, then opens the store: temporary files are gone, every block
// matches its CID and every indexed expert is whole.
func TestKill9(t *testing.T) {
	if dir := os.Getenv("STORE_KILL9_DIR"); dir != "" {
		writeForever(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a process")
	}
	for round := range 3 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
		cmd.Env = append(os.Environ(), "STORE_KILL9_DIR="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		for n := 0; n < 6+3*round && sc.Scan(); {
			if strings.HasPrefix(sc.Text(), "wrote ") {
				n++
			}
		}
		cmd.Process.Kill() // SIGKILL
		cmd.Wait()

		e := newEnv(t, 0)
		e.dir = dir
		s := e.open()
		if left := tempFiles(t, dir); len(left) > 0 {
			t.Fatalf("temporary files after Open: %v", left)
		}
		r, err := s.Verify(t.Context())
		if err != nil || !r.OK() {
			t.Fatalf("round %d: Verify after kill -9 = %+v, %v", round, r, err)
		}
		for _, m := range s.List() {
			root, _ := decodeRoot(m.CID)
			if got := readAll(t, s, root); int64(len(got)) != m.Size {
				t.Fatalf("expert %s: %d bytes, entry says %d", m.CID, len(got), m.Size)
			}
		}
		t.Logf("round %d: %d experts, %d blocks (%d orphan) survived", round, r.Experts, r.Blocks, r.Orphans)
	}
}

// writeForever adds experts and puts blocks until killed, printing a line
// after each.
func writeForever(dir string) {
	s, err := Open(dir, Options{Quota: 8 << 20})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	for i := uint64(0); ; i++ {
		size := 100<<10 + int(i%4)*(700<<10)
		if _, err := s.Add(context.Background(), bytes.NewReader(testutil.RandomBytes(size, i)), Meta{Metadata: expert.Metadata{Name: fmt.Sprint(i)}}); err != nil {
			fmt.Println("add:", err)
			os.Exit(2)
		}
		b := testutil.RandomBytes(200<<10, 1<<20+i)
		if err := s.PutBlock(rawCID(b), b); err != nil {
			fmt.Println("put:", err)
			os.Exit(2)
		}
		fmt.Println("wrote", i)
	}
}

// TestConcurrentUse adds, reads and serves blocks from several goroutines
// under a quota that forces evictions.
func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, 4<<20)
	s := e.open()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	done := make(chan struct{})
	for w := range 2 {
		wg.Go(func() {
			for i := range 8 {
				content := testutil.RandomBytes(100<<10+i*(200<<10), uint64(100*w+i))
				if _, err := s.Add(t.Context(), bytes.NewReader(content), Meta{}); err != nil {
					errs <- err
				}
			}
		})
	}
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			for _, m := range s.List() {
				root, _ := decodeRoot(m.CID)
				rc, err := s.Open(t.Context(), root)
				if errors.Is(err, ErrNotFound) {
					continue // evicted meanwhile
				}
				if err != nil {
					errs <- err
					continue
				}
				n, err := io.Copy(io.Discard, rc)
				rc.Close()
				if err != nil || n != m.Size {
					errs <- fmt.Errorf("reading %s: %d bytes, %v", m.CID, n, err)
				}
			}
		}
	})
	readers.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			for _, m := range s.List() {
				root, _ := decodeRoot(m.CID)
				if _, err := s.GetBlock(root); err != nil && !errors.Is(err, ErrNotFound) {
					errs <- err
				}
			}
		}
	})
	wg.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if u, _ := s.Usage(); u > 4<<20 {
		t.Errorf("Usage %d over the quota", u)
	}
	if r, err := s.Verify(t.Context()); err != nil || !r.OK() || r.Orphans != 0 {
		t.Errorf("Verify = %+v, %v", r, err)
	}
}
