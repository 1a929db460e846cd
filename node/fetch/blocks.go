package fetch

import (
	"context"
	"fmt"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/expertd/expertd/node/unixfs"
)

// Blocks is the block store the protocol serves from and writes to.
// PutBlock must verify data against c and be atomic; GetBlock returns
// verified bytes or an error.
type Blocks interface {
	PutBlock(c cid.Cid, data []byte) error
	GetBlock(c cid.Cid) ([]byte, error)
	HasBlock(c cid.Cid) (bool, error)
}

// localLayout walks the expert's DAG from blocks held locally.
func localLayout(ctx context.Context, b Blocks, root cid.Cid, maxSize uint64) (*unixfs.Layout, error) {
	return unixfs.Walk(ctx, root, maxSize, func(_ context.Context, c cid.Cid) ([]byte, error) {
		return b.GetBlock(c)
	})
}

// remoteLayout verifies the internal nodes a provider sent against root
// and returns the layout they describe.
func remoteLayout(ctx context.Context, root cid.Cid, size, leaves uint64, nodes [][]byte, maxSize uint64) (*unixfs.Layout, error) {
	if size > maxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, maxSize)
	}
	if root.Prefix().Codec == cid.Raw {
		if leaves != 1 || size > unixfs.ChunkSize || len(nodes) != 0 {
			return nil, fmt.Errorf("%w: raw root with %d leaves of %d bytes", ErrVerify, leaves, size)
		}
		return &unixfs.Layout{Root: root, Size: size, Leaves: []unixfs.Leaf{{Cid: root, Size: size}}}, nil
	}
	byCID := make(map[cid.Cid][]byte, len(nodes))
	for _, n := range nodes {
		c, err := nodePrefix.Sum(n)
		if err != nil {
			return nil, err
		}
		byCID[c] = n
	}
	l, err := unixfs.Walk(ctx, root, maxSize, func(_ context.Context, c cid.Cid) ([]byte, error) {
		if d, ok := byCID[c]; ok {
			return d, nil
		}
		return nil, fmt.Errorf("%w: node %s missing from header", ErrVerify, c)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrVerify, err)
	}
	if l.Size != size || uint64(len(l.Leaves)) != leaves {
		return nil, fmt.Errorf("%w: header says %d bytes in %d leaves, nodes say %d in %d", ErrVerify, size, leaves, l.Size, len(l.Leaves))
	}
	return l, nil
}

var nodePrefix = cid.Prefix{Version: 1, Codec: cid.DagProtobuf, MhType: mh.SHA2_256, MhLength: -1}
