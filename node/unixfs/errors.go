package unixfs

import "errors"

// Errors returned by this package, wrapped with detail; test with errors.Is.
var (
	// ErrHashMismatch: a block's bytes do not hash to its CID.
	ErrHashMismatch = errors.New("unixfs: block does not match its CID")
	// ErrUnsupportedCID: a CID that is not v1, raw or dag-pb, sha2-256.
	ErrUnsupportedCID = errors.New("unixfs: unsupported CID")
	// ErrNodeTooLarge: a dag-pb block longer than MaxNodeSize.
	ErrNodeTooLarge = errors.New("unixfs: dag-pb node too large")
	// ErrMalformedNode: a dag-pb block that is not a canonical UnixFS file node.
	ErrMalformedNode = errors.New("unixfs: malformed dag-pb node")
	// ErrBadLayout: a DAG whose shape is not the canonical layout of its leaves.
	ErrBadLayout = errors.New("unixfs: DAG is not the canonical file layout")
	// ErrFileTooLarge: a DAG whose root announces more bytes than the caller allows.
	ErrFileTooLarge = errors.New("unixfs: file larger than allowed")
)
