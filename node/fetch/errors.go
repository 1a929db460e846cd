package fetch

import "errors"

// Sentinel errors; returned errors wrap them with details.
var (
	ErrNoProviders = errors.New("fetch: no usable provider")
	ErrFrame       = errors.New("fetch: bad frame")
	ErrTooLarge    = errors.New("fetch: expert exceeds the size limit")
	ErrVerify      = errors.New("fetch: block failed verification")
	ErrRemote      = errors.New("fetch: provider refused")
	ErrNotFound    = errors.New("fetch: provider does not have the expert")
	ErrBusy        = errors.New("fetch: provider busy")
	ErrIncomplete  = errors.New("fetch: incomplete")
	// errSilent: a provider said nothing for too long (state.silence).
	errSilent = errors.New("fetch: provider silent")
)
