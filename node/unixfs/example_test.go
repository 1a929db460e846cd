package unixfs_test

import (
	"fmt"
	"strings"

	"github.com/expertd/expertd/node/unixfs"
)

func ExampleBuild() {
	l, err := unixfs.Build(strings.NewReader("hello world"))
	if err != nil {
		panic(err)
	}
	// The same CID as `ipfs add --cid-version=1 --raw-leaves` (checked with boxo).
	fmt.Println(l.Root, l.Size, len(l.Leaves), len(l.Nodes))
	// Output: bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e 11 1 0
}
