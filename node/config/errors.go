package config

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every error that a bad key or value causes.
var ErrInvalid = errors.New("invalid configuration")

// KeyError is a problem with one key: "p2p.listen[1]: invalid multiaddr ...".
type KeyError struct {
	Key string // dotted key, with [i] for a list element
	Err error  // the reason
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Err.Error() }

// Unwrap returns the reason and ErrInvalid.
func (e *KeyError) Unwrap() []error { return []error{e.Err, ErrInvalid} }

func keyErr(key, format string, args ...any) *KeyError {
	return &KeyError{Key: key, Err: fmt.Errorf(format, args...)}
}

// KeyErrors returns the KeyErrors in err (a single one or errors.Join of several).
func KeyErrors(err error) []*KeyError {
	var out []*KeyError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if ke, ok := err.(*KeyError); ok {
			out = append(out, ke)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}
