package compress

import "errors"

// Sentinel errors; wrapped with context by the functions that return them.
var (
	ErrOption     = errors.New("invalid option")
	ErrNonFinite  = errors.New("tensor holds NaN or Inf")
	ErrFormat     = errors.New("not a .cpeft container")
	ErrVersion    = errors.New("unsupported container version")
	ErrCorrupt    = errors.New("corrupt container")
	ErrChecksum   = errors.New("checksum mismatch")
	ErrTruncated  = errors.New("truncated container")
	ErrLimit      = errors.New("exceeds decoder limit")
	ErrBase       = errors.New("base model mismatch")
	ErrInput      = errors.New("invalid input")
	ErrTrailing   = errors.New("trailing data after container")
	ErrTooLarge   = errors.New("tensor too large")
	ErrShape      = errors.New("shape mismatch")
	ErrUnknownDir = errors.New("not a PEFT adapter or model directory")
	// ErrOutputLimit: a container declares more output than the limit.
	ErrOutputLimit = errors.New("declared output over the limit")
	// ErrNoSpace: the target filesystem has no room for the declared output.
	ErrNoSpace = errors.New("not enough free space")
	// ErrNotEmpty: the output directory holds files and overwriting was
	// not asked for.
	ErrNotEmpty = errors.New("output directory not empty")
)
