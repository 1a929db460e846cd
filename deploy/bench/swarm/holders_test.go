package swarm

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/expertd/expertd/node"
)

// leafHolders counts, for each leaf some live node holds, how many live
// nodes hold it, read from their stores on disk (node/store: one file per
// block under blocks/, named by its CID; leaves are raw blocks, CIDv1
// "bafkrei…"), fewest first. A swarm whose leaves spread evenly shows
// counts close together; a few leaves held by all and the rest by few
// means the late ones spread slowly.
func leafHolders(ns []*simNode, killed []bool) []int {
	holders := map[string]int{}
	for i, n := range ns {
		if killed[i] {
			continue
		}
		blocks := filepath.Join(n.dir, node.StoreDir, "blocks")
		shards, _ := os.ReadDir(blocks) // a node that stored nothing yet has none
		for _, sh := range shards {
			files, _ := os.ReadDir(filepath.Join(blocks, sh.Name()))
			for _, f := range files {
				if strings.HasPrefix(f.Name(), "bafkrei") {
					holders[f.Name()]++
				}
			}
		}
	}
	counts := make([]int, 0, len(holders))
	for _, c := range holders {
		counts = append(counts, c)
	}
	slices.Sort(counts)
	return counts
}
