package unixfs

import (
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/encoding/protowire"
)

// fakeLeaf is a raw link to made-up data: Walk and DecodeNode never fetch
// leaves, so any raw CID will do.
func fakeLeaf(i int, size uint64) Link {
	return Link{Cid: sumCID(cid.Raw, fmt.Appendf(nil, "leaf %d", i)), Tsize: size, Size: size}
}

// fullLeaves returns n fake leaves of ChunkSize bytes.
func fullLeaves(n int) []Link {
	ls := make([]Link, n)
	for i := range ls {
		ls[i] = fakeLeaf(i, ChunkSize)
	}
	return ls
}

// mkNode returns the block of a node over links and the link to it.
func mkNode(links ...Link) (Block, Link) {
	n := &Node{Links: links}
	tsize := uint64(0)
	for _, l := range links {
		n.FileSize += l.Size
		tsize += l.Tsize
	}
	enc := n.appendEncode(nil)
	c := sumCID(cid.DagProtobuf, enc)
	return Block{Cid: c, Data: enc}, Link{Cid: c, Tsize: tsize + uint64(len(enc)), Size: n.FileSize}
}

// Raw protobuf writers for encodings Node cannot express.
func field(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func varint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func rawLink(c cid.Cid, size uint64) []byte {
	b := field(nil, 1, c.Bytes())
	b = field(b, 2, nil)
	return varint(b, 3, size)
}

func fileData(filesize uint64, sizes ...uint64) []byte {
	b := varint(nil, 1, unixfsTypeFile)
	b = varint(b, 3, filesize)
	for _, s := range sizes {
		b = varint(b, 4, s)
	}
	return b
}

func TestDecodeNodeRoundTrip(t *testing.T) {
	want, _ := hex.DecodeString(goldenRoot35)
	n, err := DecodeNode(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Links) != 4 || n.FileSize != 3*mib+mib/2 || n.Links[3].Size != mib/2 {
		t.Fatalf("decoded %+v", n)
	}
	b, _ := mkNode(fullLeaves(LinksPerNode)...)
	if len(b.Data) > MaxNodeSize/4 {
		t.Errorf("a full node is %d bytes; MaxNodeSize %d is loose", len(b.Data), MaxNodeSize)
	}
	if _, err := DecodeNode(b.Data); err != nil {
		t.Fatalf("full node: %v", err)
	}
}

func TestDecodeNodeRejectsTruncated(t *testing.T) {
	data, _ := hex.DecodeString(goldenRoot35)
	for i := range data {
		if _, err := DecodeNode(data[:i]); !errors.Is(err, ErrMalformedNode) {
			t.Fatalf("first %d bytes: %v", i, err)
		}
	}
}

func TestDecodeNodeRejects(t *testing.T) {
	l0, l1 := fakeLeaf(0, ChunkSize), fakeLeaf(1, 7)
	link0, link1 := rawLink(l0.Cid, ChunkSize), rawLink(l1.Cid, 7)
	good := fileData(ChunkSize+7, ChunkSize, 7)
	node := func(fields ...[]byte) []byte {
		var b []byte
		for _, f := range fields {
			b = append(b, f...)
		}
		return b
	}
	links := node(field(nil, 2, link0), field(nil, 2, link1))
	if _, err := DecodeNode(node(links, field(nil, 1, good))); err != nil {
		t.Fatalf("control case: %v", err)
	}
	enc := func(mut func(n *Node)) []byte {
		n := &Node{Links: []Link{l0, l1}, FileSize: ChunkSize + 7}
		mut(n)
		return n.appendEncode(nil)
	}
	sha512, _ := mh.Sum([]byte("x"), mh.SHA2_512, -1)
	sha256, _ := mh.Sum([]byte("x"), mh.SHA2_256, -1)
	nonMinimal := node(field(nil, 2, link0), field(nil, 2, node(field(nil, 1, l1.Cid.Bytes()), field(nil, 2, nil),
		protowire.AppendTag(nil, 3, protowire.VarintType), []byte{0x87, 0x00})), field(nil, 1, good))

	cases := map[string]struct {
		data []byte
		want error
	}{
		"empty":             {nil, ErrMalformedNode},
		"garbage":           {[]byte("hello, world"), ErrMalformedNode},
		"oversized":         {make([]byte, MaxNodeSize+1), ErrNodeTooLarge},
		"trailing zero":     {node(links, field(nil, 1, good), []byte{0}), ErrMalformedNode},
		"trailing field":    {node(links, field(nil, 1, good), field(nil, 2, link0)), ErrMalformedNode},
		"two Data":          {node(links, field(nil, 1, good), field(nil, 1, good)), ErrMalformedNode},
		"Data first":        {node(field(nil, 1, good), links), ErrMalformedNode},
		"no Data":           {links, ErrMalformedNode},
		"no links":          {node(field(nil, 1, fileData(0))), ErrMalformedNode},
		"unknown field":     {node(links, field(nil, 1, good), varint(nil, 3, 1)), ErrMalformedNode},
		"Name set":          {node(field(nil, 2, node(field(nil, 1, l0.Cid.Bytes()), field(nil, 2, []byte("a")), varint(nil, 3, ChunkSize))), field(nil, 2, link1), field(nil, 1, good)), ErrMalformedNode},
		"Name absent":       {node(field(nil, 2, node(field(nil, 1, l0.Cid.Bytes()), varint(nil, 3, ChunkSize))), field(nil, 2, link1), field(nil, 1, good)), ErrMalformedNode},
		"Tsize absent":      {node(field(nil, 2, node(field(nil, 1, l0.Cid.Bytes()), field(nil, 2, nil))), field(nil, 2, link1), field(nil, 1, good)), ErrMalformedNode},
		"Hash absent":       {node(field(nil, 2, node(field(nil, 2, nil), varint(nil, 3, ChunkSize))), field(nil, 2, link1), field(nil, 1, good)), ErrMalformedNode},
		"link truncated":    {node(field(nil, 2, rawLink(l0.Cid, ChunkSize)[:5]), field(nil, 2, link1), field(nil, 1, good)), ErrMalformedNode},
		"Hash not a CID":    {node(field(nil, 2, node(field(nil, 1, []byte("not a cid")), field(nil, 2, nil), varint(nil, 3, ChunkSize))), field(nil, 2, link1), field(nil, 1, good)), ErrMalformedNode},
		"non-minimal":       {nonMinimal, ErrMalformedNode},
		"Directory":         {node(links, field(nil, 1, append(varint(nil, 1, 1), fileData(ChunkSize+7, ChunkSize, 7)[2:]...))), ErrMalformedNode},
		"inline data":       {node(links, field(nil, 1, append(field(varint(nil, 1, unixfsTypeFile), 2, []byte("x")), fileData(ChunkSize+7, ChunkSize, 7)[2:]...))), ErrMalformedNode},
		"packed blocksizes": {node(links, field(nil, 1, field(varint(varint(nil, 1, unixfsTypeFile), 3, ChunkSize+7), 4, protowire.AppendVarint(protowire.AppendVarint(nil, ChunkSize), 7)))), ErrMalformedNode},
		"no filesize":       {node(links, field(nil, 1, varint(varint(varint(nil, 1, unixfsTypeFile), 4, ChunkSize), 4, 7))), ErrMalformedNode},
		"mode set":          {node(links, field(nil, 1, varint(good, 7, 0o644))), ErrMalformedNode},
		"too few sizes":     {node(links, field(nil, 1, fileData(ChunkSize, ChunkSize))), ErrMalformedNode},
		"too many sizes":    {node(links, field(nil, 1, fileData(ChunkSize+8, ChunkSize, 7, 1))), ErrMalformedNode},
		"filesize off":      {enc(func(n *Node) { n.FileSize++ }), ErrMalformedNode},
		"zero blocksize":    {enc(func(n *Node) { n.Links[1].Size, n.Links[1].Tsize, n.FileSize = 0, 0, ChunkSize }), ErrMalformedNode},
		"raw Tsize":         {enc(func(n *Node) { n.Links[1].Tsize = 8 }), ErrMalformedNode},
		"raw too big":       {enc(func(n *Node) { n.Links[0].Size, n.Links[0].Tsize, n.FileSize = ChunkSize+1, ChunkSize+1, ChunkSize+8 }), ErrMalformedNode},
		"mixed codecs":      {enc(func(n *Node) { n.Links[1].Cid = sumCID(cid.DagProtobuf, nil); n.Links[1].Tsize = 100 }), ErrMalformedNode},
		"dag-pb Tsize": {enc(func(n *Node) {
			n.Links[0].Cid, n.Links[1].Cid = sumCID(cid.DagProtobuf, nil), sumCID(cid.DagProtobuf, nil)
		}), ErrMalformedNode},
		"CIDv0 link":     {enc(func(n *Node) { n.Links[1].Cid = cid.NewCidV0(sha256) }), ErrUnsupportedCID},
		"sha2-512 link":  {enc(func(n *Node) { n.Links[1].Cid = cid.NewCidV1(cid.Raw, sha512) }), ErrUnsupportedCID},
		"too many links": {enc(func(n *Node) { n.Links = fullLeaves(LinksPerNode + 1); n.FileSize = (LinksPerNode + 1) * ChunkSize }), ErrMalformedNode},
		"blocksize overflow": {enc(func(n *Node) {
			n.Links[0].Cid, n.Links[1].Cid = sumCID(cid.DagProtobuf, nil), sumCID(cid.DagProtobuf, []byte{1})
			n.Links[0].Size, n.Links[1].Size = 1<<63, 1<<63
			n.Links[0].Tsize, n.Links[1].Tsize = 1<<63+1, 1<<63+1
			n.FileSize = 0
		}), ErrMalformedNode},
	}
	for name, tc := range cases {
		_, err := DecodeNode(tc.data)
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}
