// Package unixfs computes the content IDs of expert files exactly as kubo's
// `ipfs add --cid-version=1 --raw-leaves --chunker=size-1048576` does, and
// checks blocks and DAG nodes received from untrusted peers.
//
// # Layout
//
// A file is cut into ChunkSize (1 MiB) chunks; each chunk is a raw leaf
// (CIDv1, codec raw 0x55, sha2-256). A file of at most ChunkSize bytes,
// the empty file included, is a single raw leaf and its CID is the raw CID
// of its bytes (bafkrei...). A longer file is a balanced DAG of dag-pb nodes
// (codec 0x70, sha2-256) holding at most LinksPerNode (174) links each, built
// the way boxo's balanced importer builds it (ipld/unixfs/importer/balanced):
// the first chunk becomes the root; while data remains the root is wrapped in
// a new node one level deeper that is filled up to LinksPerNode children, so
// every leaf sits at the same depth and a level may end in a chain of
// single-child nodes (a file of 174 MiB + 1 byte has a root with two links,
// the second a node holding one 1-byte leaf).
//
// Each dag-pb node is encoded canonically, Links (field 2) before Data
// (field 1); every PBLink carries Hash, an empty but present Name and Tsize,
// the summed length of all serialized blocks under the link. Data is a
// UnixFS message with Type File, filesize and one blocksize per link
// (unpacked), and nothing else.
//
// # Independent check
//
// The golden CIDs in build_test.go were not computed by this package. They
// come from a throwaway module outside this repository that ran
// github.com/ipfs/boxo v0.43.0 (with go-cid v0.6.2, go-multihash v0.2.3,
// go-codec-dagpb v1.7.0): balanced.Layout with
// helpers.DagBuilderParams{Maxlinks: helpers.DefaultLinksPerBlock (174),
// RawLeaves: true, CidBuilder: CIDv1 dag-pb sha2-256} over
// chunker.NewSizeSplitter(r, 1048576), which is what kubo's adder runs for the
// flags above. The inputs were sizes 0, 1, 1 MiB, 1 MiB+1, 2 MiB, 3.5 MiB,
// 174 MiB and 174 MiB+1 of splitmix64 output seeded with the size
// (testinput_test.go regenerates them). The 3.5 MiB root block is also kept
// byte for byte as a fuzz seed.
//
// # Untrusted peers
//
// VerifyBlock checks a block against its CID, DecodeNode parses a dag-pb
// file node strictly (only the canonical encoding Build produces is
// accepted), and Walk fetches and verifies the internal nodes under a root to
// list the leaves a requester must fetch, rejecting any DAG that is not the
// canonical layout of its leaves.
package unixfs
