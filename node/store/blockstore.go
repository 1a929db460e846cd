package store

import (
	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/node/unixfs"
)

// MaxBlockSize is the largest block a BlockStore accepts: a full UnixFS leaf.
// Canonical dag-pb nodes are far smaller (unixfs.MaxNodeSize).
const MaxBlockSize = unixfs.ChunkSize

// BlockStore keeps blocks by CID. It is what the fetch protocol needs: save
// blocks as they arrive from peers, serve blocks to peers, and find out
// which blocks of a DAG it already has. Implementations are safe for
// concurrent use.
type BlockStore interface {
	// PutBlock stores data as block c. It first checks data against c
	// with unixfs.VerifyBlock and refuses blocks larger than MaxBlockSize
	// (ErrTooLarge); on any error nothing is stored. Putting a block that
	// is already stored does nothing and returns nil. Once PutBlock
	// returns nil the block is durable.
	PutBlock(c cid.Cid, data []byte) error

	// GetBlock returns the bytes of block c, checked against c on every
	// call; the caller owns the slice. It returns an error wrapping
	// ErrNotFound when c is not stored, and ErrCorrupt when the stored
	// bytes no longer match c (the block is then dropped, so a later
	// PutBlock can repair it).
	GetBlock(c cid.Cid) ([]byte, error)

	// HasBlock reports whether block c is stored, without reading it.
	HasBlock(c cid.Cid) (bool, error)
}

var _ BlockStore = (*Store)(nil)
