package memory

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
	"github.com/expertd/expertd/internal/testutil"
)

// The daemon processes and CLI runs of the benchmark.
type daemon = daemontest.Daemon

var startDaemon = daemontest.Start

func buildBinary(t *testing.T) string { return daemontest.Build(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	daemontest.Clean()
	os.Exit(code)
}

// pid is the daemon's process ID.
func pid(d *daemon) int { return d.Cmd.Process.Pid }

// waitPeer waits until d is connected to the peer id.
func waitPeer(t *testing.T, d *daemon, id string) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, d.Name+" connected to "+id, func() bool {
		ps, err := d.Client().Peers(context.Background())
		if err != nil {
			return false
		}
		for _, p := range ps {
			if p.ID == id {
				return true
			}
		}
		return false
	})
}
