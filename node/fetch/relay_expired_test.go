package fetch

import (
	"errors"
	"testing"
	"time"

	"github.com/expertd/expertd/node/unixfs"
)

// A relayed connection that reached its duration limit is not asked
// anything: the check fails at once with RelayLimitError (Expired), which
// says the relay closed it, instead of a request that dies with the
// connection (issue 19: dropping the check passed every test, as a real
// relay closes the connection at its limit before a test can ask).
func TestRelayPathExpired(t *testing.T) {
	l := &unixfs.Layout{Size: 2 << 20, Leaves: []unixfs.Leaf{{Size: 1 << 20}, {Size: 1 << 20}}}
	p := &relayPath{limitBytes: 128 << 20, limitDuration: 2 * time.Minute, opened: time.Now().Add(-2*time.Minute - time.Second)}
	var rl *RelayLimitError
	if err := p.check(l, []uint64{0, 1}); !errors.As(err, &rl) || !rl.Expired || !errors.Is(err, ErrRelayLimit) {
		t.Fatalf("check of a connection past its duration: %v, want an expired RelayLimitError", err)
	}
	p.opened = time.Now().Add(-time.Minute)
	if err := p.check(l, []uint64{0, 1}); err != nil {
		t.Fatalf("check of a connection within its limits: %v", err)
	}
}
