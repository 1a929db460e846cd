package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/unixfs"
)

// cancelWait bounds how long an interrupted fetch waits for the daemon to
// cancel its fetch.
const cancelWait = 15 * time.Second

// waitFetch follows the daemon's fetch t until it ends, its progress and
// what it does (its phase) on w. Interrupted (Ctrl-C), it cancels the
// daemon's fetch too and says what became of it.
func waitFetch(ctx context.Context, c *api.Client, t api.Transfer, w io.Writer) error {
	m := newMeter(w, "fetch", t.CID, inBytes(), inSteps(unixfs.ChunkSize))
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	var err error
	for t.State == api.StateRunning {
		m.Note(phaseNote(t))
		m.Set(int64(t.Bytes), int64(t.Total))
		select {
		case <-ctx.Done():
			m.Fail("interrupted")
			return cancelFetch(c, t.CID)
		case <-poll.C:
		}
		if t, err = c.Transfer(ctx, t.CID); err != nil {
			if ctx.Err() != nil {
				continue // interrupted: handled above
			}
			m.Fail("failed")
			return err
		}
	}
	switch t.State {
	case api.StateFailed:
		m.Fail("failed")
		return errors.New(withoutCID(t.Error, t.CID))
	case api.StateCanceled:
		m.Fail("canceled")
		return errors.New("canceled on the daemon (DELETE /v1/fetch by another client)")
	}
	m.Set(int64(t.Bytes), int64(t.Total))
	m.Done()
	return nil
}

// phaseNote is what the meter says beside the figures: the daemon's phase,
// but not while it receives the expert (the figures say that), and
// "looking for providers" from a daemon that reports no phase.
func phaseNote(t api.Transfer) string {
	switch {
	case t.Phase == "" && t.Total == 0:
		return "looking for providers"
	case strings.HasPrefix(t.Phase, api.PhaseFetching) && t.Total > 0:
		return ""
	}
	return t.Phase
}

// cancelFetch asks the daemon to cancel its fetch of c, after an
// interrupt, and returns the command's error, which says what became of it.
func cancelFetch(c *api.Client, cid string) error {
	ctx, stop := context.WithTimeout(context.Background(), cancelWait)
	defer stop()
	t, err := c.CancelFetch(ctx, cid)
	switch {
	case err != nil:
		return fmt.Errorf("interrupted; the daemon's fetch could not be canceled (%v): it may go on", err)
	case t.State == api.StateDone:
		return errors.New("interrupted, but the daemon had fetched it already (expertd ls shows it)")
	case t.State == api.StateRunning:
		return errors.New("interrupted; the daemon is still canceling its fetch")
	case t.Bytes > 0:
		return fmt.Errorf("interrupted; canceled the daemon's fetch (%s of %s verified and kept: fetch it again to resume)", human(int64(t.Bytes)), human(int64(t.Total)))
	}
	return errors.New("interrupted; canceled the daemon's fetch")
}

// withoutCID is a fetch's error without the CID that the command names
// already: a leading "fetch CID: " or "CID: " dropped, and "it" for the CID
// elsewhere.
func withoutCID(msg, c string) string {
	for _, p := range []string{"fetch " + c + ": ", c + ": "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return strings.ReplaceAll(msg, c, "it")
}
