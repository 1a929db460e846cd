package testutil

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds, failing the test with what after
// within. The wait between polls starts at a millisecond, so that a
// condition soon true costs little, and doubles up to maxPoll, so that a
// long wait (a daemon process, a libp2p mesh) does not spin. within
// bounds the wait; it is not an assertion on how long a thing takes.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, maxPoll) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(wait)
	}
}

// maxPoll is the longest wait between two polls of Eventually.
const maxPoll = 50 * time.Millisecond
