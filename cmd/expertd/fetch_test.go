package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
)

// TestFetchInterrupted: a fetch no provider answers says, on a stderr that
// is not a terminal, that it is looking for providers, in plain lines; an
// interrupt ends it with a word of what became of it, not "context
// canceled".
func TestFetchInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon process")
	}
	bin := daemontest.Build(t)
	d := daemontest.Start(t, bin, t.TempDir(), "a", "")
	root := newRootCmd(newViper())
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"fetch", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "--api", d.API})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(2500*time.Millisecond, cancel) // Ctrl-C, once a line or two is out
	err := root.ExecuteContext(ctx)
	if err == nil || !strings.Contains(err.Error(), "interrupted") || errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted fetch: %v", err)
	}
	lines := errOut.String()
	if !strings.Contains(lines, "looking for providers… ") || strings.ContainsAny(lines, "\r\x1b") {
		t.Fatalf("stderr, not a terminal:\n%q", lines)
	}
	if strings.Count(lines, "\n") != 1 {
		t.Errorf("more than the one line of the first two seconds:\n%s", lines)
	}
	if out.Len() != 0 {
		t.Errorf("stdout: %q", out.String())
	}
	t.Logf("%s\n%v", lines, err)
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
