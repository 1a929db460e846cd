package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
)

// searching is the daemon's phase while it looks for the providers of an
// expert nobody announced.
const searching = "looking for providers: gossip, DHT (attempt 1 of 5)"

// TestFetchInterrupted: a fetch no provider answers says, on a stderr that
// is not a terminal, what the daemon does, in plain lines; an interrupt
// cancels the daemon's fetch too and says so, not "context canceled".
func TestFetchInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon process")
	}
	bin := daemontest.Build(t)
	d := daemontest.Start(t, bin, t.TempDir(), "a", "")
	root := newRootCmd(newViper())
	var out bytes.Buffer
	errOut := &syncBuffer{}
	root.SetOut(&out)
	root.SetErr(errOut)
	root.SetArgs([]string{"fetch", longCID, "--api", d.API})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	testutil.Eventually(t, 30*time.Second, "a line saying what the daemon does", func() bool {
		return strings.Contains(errOut.String(), searching+"… ")
	})
	cancel() // Ctrl-C
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "interrupted; canceled the daemon's fetch") || errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted fetch: %v", err)
	}
	lines := errOut.String()
	if strings.ContainsAny(lines, "\r\x1b") {
		t.Fatalf("stderr, not a terminal:\n%q", lines)
	}
	if out.Len() != 0 {
		t.Errorf("stdout: %q", out.String())
	}
	if tr, err := d.Client().Transfer(context.Background(), longCID); err != nil || tr.State != api.StateCanceled {
		t.Fatalf("the daemon's fetch after the interrupt: %+v %v", tr, err)
	}
	t.Logf("%s\n%v", lines, err)
}

// TestFetchCtrlC: SIGINT to an `expertd fetch` process cancels the
// daemon's fetch (DELETE /v1/fetch/{cid}), says so and exits 1.
func TestFetchCtrlC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon process")
	}
	bin := daemontest.Build(t)
	root := t.TempDir()
	d := daemontest.Start(t, bin, root, "a", "")
	cmd := exec.Command(bin, "fetch", longCID, "--api", d.API)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+root)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after a failure before its Wait: no process left behind
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	var all syncBuffer
	read := make(chan struct{}) // closed once stderr is read to its end
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			all.Write(append(sc.Bytes(), '\n'))
		}
	}()
	testutil.Eventually(t, 30*time.Second, "the fetch saying what the daemon does", func() bool {
		return strings.Contains(all.String(), searching)
	})
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	// Wait closes the pipe: its last lines would be lost if it ran
	// before they were read.
	select {
	case <-read:
	case <-time.After(30 * time.Second):
		t.Fatalf("expertd fetch still writing 30 s after SIGINT:\n%s", all.String())
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v\n%s", err, all.String())
	}
	if want := "expertd: fetch " + longCID + ": interrupted; canceled the daemon's fetch\n"; !strings.HasSuffix(all.String(), want) {
		t.Fatalf("stderr:\n%s\nwant it to end with %q", all.String(), want)
	}
	if tr, err := d.Client().Transfer(context.Background(), longCID); err != nil || tr.State != api.StateCanceled {
		t.Fatalf("the daemon's fetch after Ctrl-C: %+v %v", tr, err)
	}
}

// TestFetchNoProvider: a fetch no provider answers fails after
// fetch.find_timeout, and its error names the CID once.
func TestFetchNoProvider(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon process")
	}
	bin := daemontest.Build(t)
	root := t.TempDir()
	t.Setenv("EXPERTD_FETCH_FIND_TIMEOUT", "1s") // the daemon's
	d := daemontest.Start(t, bin, root, "a", "")
	_, err := daemontest.RunErr(bin, root, "fetch", longCID, "--api", d.API)
	if err == nil {
		t.Fatal("a fetch nobody answers succeeded")
	}
	var last string
	for _, l := range strings.Split(err.Error(), "\n") {
		if strings.HasPrefix(l, "expertd: ") {
			last = l
		}
	}
	want := "expertd: fetch " + longCID + ": no provider answered within 1s: none known from gossip, none found in the DHT"
	if !strings.HasPrefix(last, want) || strings.Count(last, longCID) != 1 {
		t.Fatalf("error line %q, want %q... naming the CID once", last, want)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A failed fetch's error names the CID once: the command names it.
func TestWithoutCID(t *testing.T) {
	const c = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
	for in, want := range map[string]string{
		"no provider of " + c + " known (gossip or DHT)":      "no provider of it known (gossip or DHT)",
		"fetch " + c + ": stalled: no leaf for 30s":           "stalled: no leaf for 30s",
		c + ": hash mismatch in a leaf from 12D3KooWA":        "hash mismatch in a leaf from 12D3KooWA",
		"the store is over quota: 5 bytes do not fit, no CID": "the store is over quota: 5 bytes do not fit, no CID",
	} {
		if got := withoutCID(in, c); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// The meter shows the daemon's phase, but not while the expert comes in.
func TestPhaseNote(t *testing.T) {
	for _, tc := range []struct {
		tr   api.Transfer
		want string
	}{
		{api.Transfer{}, "looking for providers"}, // a daemon without phases
		{api.Transfer{Phase: searching}, searching},
		{api.Transfer{Phase: "fetching from 3 providers", Total: 10}, ""},
		{api.Transfer{Phase: "retrying in 2s (attempt 1 of 5 failed)", Bytes: 3, Total: 10}, "retrying in 2s (attempt 1 of 5 failed)"},
		{api.Transfer{Phase: "storing", Bytes: 10, Total: 10}, "storing"},
	} {
		if got := phaseNote(tc.tr); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.tr, got, tc.want)
		}
	}
}
