package store

import (
	"errors"
	"fmt"
)

// Errors returned by this package, wrapped with detail; test with errors.Is.
// Blocks that fail their CID check also wrap unixfs.ErrHashMismatch or
// unixfs.ErrUnsupportedCID.
var (
	// ErrNotFound: no block, or no indexed expert, under that CID.
	ErrNotFound = errors.New("store: not found")
	// ErrCorrupt: a stored block no longer matches its CID. It has been
	// removed, so the block can be fetched again.
	ErrCorrupt = errors.New("store: corrupt block")
	// ErrTooLarge: a block larger than MaxBlockSize, or an expert larger
	// than Options.MaxExpertSize.
	ErrTooLarge = errors.New("store: too large")
	// ErrIncomplete: an expert some of whose blocks are not stored.
	ErrIncomplete = errors.New("store: expert incomplete")
	// ErrQuota: an expert that does not fit in the quota even after
	// evicting every unpinned expert.
	ErrQuota = errors.New("store: quota exceeded")
	// ErrLocked: another process has the data directory open.
	ErrLocked = errors.New("store: data directory in use by another process")
	// ErrClosed: the Store has been closed.
	ErrClosed = errors.New("store: closed")
)

// LockedError is ErrLocked with the lock file and, when known, the process
// that holds it.
type LockedError struct {
	Path string
	PID  int // 0: unknown
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("%v: %s is held by process %d", ErrLocked, e.Path, e.PID)
	}
	return fmt.Sprintf("%v: %s", ErrLocked, e.Path)
}

// Is makes a LockedError match ErrLocked.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }
