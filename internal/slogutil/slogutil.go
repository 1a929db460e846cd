// Package slogutil is expertd's logging convention in code: one attribute
// key per concept, made by the typed helpers here, so that a log can be
// filtered by them (cid=..., peer=...), and a component attribute set
// where a logger is handed to a part of the daemon. CONTRIBUTING.md says
// the rest of the convention.
package slogutil

import (
	"fmt"
	"log/slog"

	cid "github.com/ipfs/go-cid"
)

// The keys. A concept has one key everywhere: a peer is always "peer",
// never "from" or "id".
const (
	KeyComponent = "component" // the part of the daemon that logs
	KeyCID       = "cid"       // an expert's content ID
	KeyPeer      = "peer"      // another peer's ID
	KeySelf      = "self"      // this node's own peer ID
	KeyErr       = "err"       // what went wrong
	KeyPath      = "path"      // a file or directory on this machine
	KeyName      = "name"      // an expert's (or its adapter's) name
	KeyBytes     = "bytes"     // a size in bytes
)

// Component names the part of the daemon a logger is handed to ("gossip",
// "store"): the one who hands it down sets it, the part itself does not
// prefix its messages.
func Component(name string) slog.Attr { return slog.String(KeyComponent, name) }

// With is log with its component set, for handing it down.
func With(log *slog.Logger, component string) *slog.Logger {
	return log.With(Component(component))
}

// CID is an expert's content ID, parsed or as its string.
func CID[T cid.Cid | string](c T) slog.Attr { return slog.Any(KeyCID, c) }

// Peer is another peer's ID (a libp2p peer.ID): the sender of a message, a
// provider, the remote end of a connection. It takes a fmt.Stringer so
// that packages without libp2p (the store) can use this one.
func Peer(p fmt.Stringer) slog.Attr { return slog.Any(KeyPeer, p) }

// Self is this node's own peer ID (a libp2p peer.ID).
func Self(p fmt.Stringer) slog.Attr { return slog.Any(KeySelf, p) }

// Err is what went wrong.
func Err(err error) slog.Attr { return slog.Any(KeyErr, err) }

// Path is a file or directory on this machine.
func Path(p string) slog.Attr { return slog.String(KeyPath, p) }

// Name is an expert's name, or its adapter's.
func Name(n string) slog.Attr { return slog.String(KeyName, n) }

// Bytes is a size in bytes.
func Bytes[T ~int | ~int64 | ~uint64](n T) slog.Attr { return slog.Int64(KeyBytes, int64(n)) }
