package unixfs

import (
	"bytes"
	"fmt"
	"math"

	cid "github.com/ipfs/go-cid"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	// ChunkSize is the size of every leaf but the last (kubo's
	// --chunker=size-1048576).
	ChunkSize = 1 << 20
	// LinksPerNode is the most links a dag-pb node holds (boxo's
	// helpers.DefaultLinksPerBlock, kubo's default file DAG width).
	LinksPerNode = 174
	// MaxNodeSize bounds the dag-pb blocks DecodeNode parses. A canonical
	// node with LinksPerNode links is about 11 KiB.
	MaxNodeSize = 64 << 10
)

// UnixFS Data type File (unixfs.proto, Data.DataType).
const unixfsTypeFile = 2

// Link is one child of a dag-pb file node.
type Link struct {
	Cid   cid.Cid // a raw leaf or a dag-pb node
	Tsize uint64  // PBLink.Tsize: the summed length of every block under the link
	Size  uint64  // UnixFS blocksize: the file bytes under the link
}

// Node is a dag-pb UnixFS file node: its links in file order and the file
// bytes it covers (the sum of the links' Size).
type Node struct {
	Links    []Link
	FileSize uint64
}

// appendEncode appends the canonical dag-pb encoding of n to b: every PBLink
// (Hash, empty Name, Tsize) and then Data, a UnixFS message of Type File,
// filesize and unpacked blocksizes, as boxo writes them.
func (n *Node) appendEncode(b []byte) []byte {
	for _, l := range n.Links {
		h := l.Cid.Bytes()
		size := protowire.SizeTag(1) + protowire.SizeBytes(len(h)) +
			protowire.SizeTag(2) + protowire.SizeBytes(0) +
			protowire.SizeTag(3) + protowire.SizeVarint(l.Tsize)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, h)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, "")
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, l.Tsize)
	}
	size := protowire.SizeTag(1) + protowire.SizeVarint(unixfsTypeFile) +
		protowire.SizeTag(3) + protowire.SizeVarint(n.FileSize)
	for _, l := range n.Links {
		size += protowire.SizeTag(4) + protowire.SizeVarint(l.Size)
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, unixfsTypeFile)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, n.FileSize)
	for _, l := range n.Links {
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, l.Size)
	}
	return b
}

// malformed wraps ErrMalformedNode with a formatted reason.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedNode, fmt.Sprintf(format, args...))
}

// DecodeNode parses a dag-pb UnixFS file node received from anywhere. It
// accepts only what Build writes: at most MaxNodeSize bytes; 1 to
// LinksPerNode PBLinks, each with a sha2-256 CIDv1 Hash of codec raw or
// dag-pb, an empty Name and a Tsize; then Data holding Type File, no inline
// data, filesize and one non-zero blocksize per link that add up to it; all
// links of one codec; a raw link's Tsize equal to its blocksize and at most
// ChunkSize, a dag-pb link's Tsize larger than its blocksize; and the
// canonical encoding byte for byte. It returns ErrNodeTooLarge or
// ErrMalformedNode otherwise. It does not check the block's hash: call
// VerifyBlock first.
func DecodeNode(data []byte) (*Node, error) {
	if len(data) > MaxNodeSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrNodeTooLarge, len(data), MaxNodeSize)
	}
	n := &Node{}
	var fs []byte
	seenData := false
	for b := data; len(b) > 0; {
		num, typ, tl := protowire.ConsumeTag(b)
		if tl < 0 {
			return nil, malformed("PBNode tag: %v", protowire.ParseError(tl))
		}
		b = b[tl:]
		if typ != protowire.BytesType || (num != 1 && num != 2) {
			return nil, malformed("PBNode field %d of wire type %d", num, typ)
		}
		v, vl := protowire.ConsumeBytes(b)
		if vl < 0 {
			return nil, malformed("PBNode field %d: %v", num, protowire.ParseError(vl))
		}
		b = b[vl:]
		if seenData {
			return nil, malformed("PBNode field %d after Data", num)
		}
		if num == 1 {
			fs, seenData = v, true
			continue
		}
		if len(n.Links) == LinksPerNode {
			return nil, malformed("more than %d links", LinksPerNode)
		}
		l, err := decodeLink(v)
		if err != nil {
			return nil, fmt.Errorf("link %d: %w", len(n.Links), err)
		}
		n.Links = append(n.Links, l)
	}
	if !seenData {
		return nil, malformed("no Data")
	}
	if len(n.Links) == 0 {
		return nil, malformed("no links")
	}
	if err := decodeFileData(fs, n); err != nil {
		return nil, err
	}
	if err := checkLinks(n); err != nil {
		return nil, err
	}
	if !bytes.Equal(n.appendEncode(make([]byte, 0, len(data))), data) {
		return nil, malformed("not the canonical encoding")
	}
	return n, nil
}

// decodeLink parses one PBLink: Hash, Name and Tsize, each once, in order.
func decodeLink(b []byte) (Link, error) {
	var l Link
	next := protowire.Number(1)
	for len(b) > 0 {
		num, typ, tl := protowire.ConsumeTag(b)
		if tl < 0 {
			return l, malformed("PBLink tag: %v", protowire.ParseError(tl))
		}
		b = b[tl:]
		if num != next {
			return l, malformed("PBLink field %d, want field %d", num, next)
		}
		switch num {
		case 1, 2:
			if typ != protowire.BytesType {
				return l, malformed("PBLink field %d of wire type %d", num, typ)
			}
			v, vl := protowire.ConsumeBytes(b)
			if vl < 0 {
				return l, malformed("PBLink field %d: %v", num, protowire.ParseError(vl))
			}
			b = b[vl:]
			if num == 2 {
				if len(v) != 0 {
					return l, malformed("PBLink Name %q, want empty", v)
				}
				break
			}
			c, err := cid.Cast(v)
			if err != nil {
				return l, malformed("PBLink Hash: %v", err)
			}
			if _, err := checkCID(c); err != nil {
				return l, err
			}
			l.Cid = c
		case 3:
			if typ != protowire.VarintType {
				return l, malformed("PBLink Tsize of wire type %d", typ)
			}
			v, vl := protowire.ConsumeVarint(b)
			if vl < 0 {
				return l, malformed("PBLink Tsize: %v", protowire.ParseError(vl))
			}
			b = b[vl:]
			l.Tsize = v
		}
		next++
	}
	if next != 4 {
		return l, malformed("PBLink without field %d", next)
	}
	return l, nil
}

// decodeFileData parses the UnixFS Data message of a file node into n's
// FileSize and the links' Size, in field order: Type, filesize, blocksizes.
func decodeFileData(b []byte, n *Node) error {
	var seenType, seenSize bool
	var sizes int
	for len(b) > 0 {
		num, typ, tl := protowire.ConsumeTag(b)
		if tl < 0 {
			return malformed("UnixFS tag: %v", protowire.ParseError(tl))
		}
		b = b[tl:]
		if typ != protowire.VarintType {
			return malformed("UnixFS field %d of wire type %d", num, typ)
		}
		v, vl := protowire.ConsumeVarint(b)
		if vl < 0 {
			return malformed("UnixFS field %d: %v", num, protowire.ParseError(vl))
		}
		b = b[vl:]
		switch {
		case num == 1 && !seenType && !seenSize && sizes == 0:
			if v != unixfsTypeFile {
				return malformed("UnixFS Type %d, want File (%d)", v, unixfsTypeFile)
			}
			seenType = true
		case num == 3 && seenType && !seenSize && sizes == 0:
			n.FileSize, seenSize = v, true
		case num == 4 && seenSize:
			if sizes == len(n.Links) {
				return malformed("more blocksizes than %d links", len(n.Links))
			}
			n.Links[sizes].Size = v
			sizes++
		default:
			return malformed("UnixFS field %d unexpected here", num)
		}
	}
	if !seenSize {
		return malformed("UnixFS Data without Type and filesize")
	}
	if sizes != len(n.Links) {
		return malformed("%d blocksizes for %d links", sizes, len(n.Links))
	}
	return nil
}

// checkLinks checks that n's links are of one codec, that their sizes add up
// to n.FileSize and that each Tsize fits its blocksize.
func checkLinks(n *Node) error {
	codec := n.Links[0].Cid.Prefix().Codec
	var sum uint64
	for i, l := range n.Links {
		if c := l.Cid.Prefix().Codec; c != codec {
			return malformed("link %d has codec 0x%x, link 0 has 0x%x", i, c, codec)
		}
		if l.Size == 0 {
			return malformed("link %d has blocksize 0", i)
		}
		if codec == cid.Raw && (l.Size > ChunkSize || l.Tsize != l.Size) {
			return malformed("raw link %d: blocksize %d, Tsize %d", i, l.Size, l.Tsize)
		}
		if codec == cid.DagProtobuf && l.Tsize <= l.Size {
			return malformed("dag-pb link %d: Tsize %d not above blocksize %d", i, l.Tsize, l.Size)
		}
		if l.Size > math.MaxUint64-sum {
			return malformed("blocksizes overflow")
		}
		sum += l.Size
	}
	if sum != n.FileSize {
		return malformed("blocksizes add up to %d, filesize is %d", sum, n.FileSize)
	}
	return nil
}
