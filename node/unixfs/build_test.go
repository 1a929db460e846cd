package unixfs

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	cid "github.com/ipfs/go-cid"
)

const mib = 1 << 20

// golden holds CIDs computed by boxo v0.43.0's balanced importer (raw
// leaves, CIDv1, 1 MiB chunks, 174 links), not by this package; see the
// package doc.
var golden = []struct {
	size int64
	root string
}{
	{0, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
	{1, "bafkreigrxpltxmersc73rayfm5y6eluzova62iahs6j36m4xl7qwkrmbym"},
	{mib, "bafkreiabvqqa2waixhlohk27awlx3g7uxchkxqq3vvvdbrzmyowx2uzudy"},
	{mib + 1, "bafybeih763qzvtipbcoshluhibqyvbvjek5yzqgyvccn44uqcqpwsnvc6q"},
	{2 * mib, "bafybeieqk7ugej6kxtiuxtf3vxngaxoae4lvuts4n7z4vjonnmmx36hf5m"},
	{3*mib + mib/2, "bafybeidq4bkhwhnw4n43jass6emty7rif3udl73duitq76w4qhckqus6iq"},
	{174 * mib, "bafybeihcvcmt5ysxzmo6cenf2bvcskyy3s2ixc6i77haz6mls2enuqx4sm"},
	{174*mib + 1, "bafybeide4xalujx2eo3qx4fwp3orf455jfgukezgih4bpnryqd5e7mh7xq"},
}

// goldenRoot35 is boxo's root block for the 3.5 MiB input.
const goldenRoot35 = "122c0a2401551220d0f6bc8896a4566769d342359c768721c4e3928d82d9a9810d3ef98c20c78a2d120018808040" +
	"122c0a24015512205c6a66295a8ed0907205f3a9be2250dacb880d35ebcaea3a5266059c87545553120018808040" +
	"122c0a24015512208b9905654b9344e380cd3156cd974205e1131a1329ddf29dc14acbd8452260ff120018808040" +
	"122c0a24015512208f426e487575863bf425343de6cf2d4a89714e7b29e0eeed8547a0ab026b75db1200188080200a" +
	"170802188080e00120808040208080402080804020808020"

func TestTestInputMatchesCidcheck(t *testing.T) {
	got, err := io.ReadAll(testInput(16))
	if err != nil {
		t.Fatal(err)
	}
	if want := "079277badc86e15d4b6485c9ca115a14"; hex.EncodeToString(got) != want {
		t.Fatalf("testInput(16) = %x, want %s", got, want)
	}
}

func TestBuildGolden(t *testing.T) {
	for _, g := range golden {
		t.Run(fmt.Sprint(g.size), func(t *testing.T) {
			if g.size > 64*mib && testing.Short() {
				t.Skip("large input in -short mode")
			}
			l, err := Build(testInput(g.size))
			if err != nil {
				t.Fatal(err)
			}
			if l.Root.String() != g.root {
				t.Fatalf("root %s, boxo says %s", l.Root, g.root)
			}
			checkLayout(t, l, uint64(g.size))
		})
	}
}

// checkLayout checks what a layout of a size-byte file must hold beyond its
// root CID: contiguous leaves, decodable verified nodes, root last, and a
// Walk over its own nodes that finds the same layout.
func checkLayout(t *testing.T, l *Layout, size uint64) {
	t.Helper()
	if l.Size != size {
		t.Errorf("Size %d, want %d", l.Size, size)
	}
	wantLeaves := (size + ChunkSize - 1) / ChunkSize
	if size == 0 {
		wantLeaves = 1
	}
	if uint64(len(l.Leaves)) != wantLeaves {
		t.Fatalf("%d leaves, want %d", len(l.Leaves), wantLeaves)
	}
	var off uint64
	for i, lf := range l.Leaves {
		if lf.Offset != off || lf.Cid.Prefix().Codec != cid.Raw {
			t.Fatalf("leaf %d: %+v at offset %d", i, lf, off)
		}
		off += lf.Size
	}
	if off != size {
		t.Fatalf("leaves cover %d bytes", off)
	}
	blocks := map[cid.Cid][]byte{}
	for i, b := range l.Nodes {
		if err := VerifyBlock(b.Cid, b.Data); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if _, err := DecodeNode(b.Data); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		blocks[b.Cid] = b.Data
	}
	if size <= ChunkSize {
		if len(l.Nodes) != 0 || l.Root != l.Leaves[0].Cid {
			t.Fatalf("small file: root %s, %d nodes", l.Root, len(l.Nodes))
		}
		return
	}
	if last := l.Nodes[len(l.Nodes)-1].Cid; last != l.Root {
		t.Fatalf("last node %s, root %s", last, l.Root)
	}
	walked, err := Walk(context.Background(), l.Root, size, mapGetter(blocks))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(walked, l) {
		t.Fatalf("Walk found a different layout")
	}
}

func mapGetter(blocks map[cid.Cid][]byte) Getter {
	return func(_ context.Context, c cid.Cid) ([]byte, error) {
		b, ok := blocks[c]
		if !ok {
			return nil, fmt.Errorf("no block %s", c)
		}
		return b, nil
	}
}

func TestBuildRootBlockMatchesBoxo(t *testing.T) {
	l, err := Build(testInput(3*mib + mib/2))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString(goldenRoot35)
	if got := l.Nodes[len(l.Nodes)-1].Data; !bytes.Equal(got, want) {
		t.Fatalf("root block\n got %x\nwant %x", got, want)
	}
}

func TestBuildSecondLevel(t *testing.T) {
	if testing.Short() {
		t.Skip("large input in -short mode")
	}
	l, err := Build(testInput(174*mib + 1))
	if err != nil {
		t.Fatal(err)
	}
	root, err := DecodeNode(l.Nodes[len(l.Nodes)-1].Data)
	if err != nil {
		t.Fatal(err)
	}
	// Links as boxo wrote them: a full node, then a node holding one 1-byte leaf.
	want := []struct {
		cid   string
		tsize uint64
	}{
		{"bafybeib7uwpsfmwma76l5zqmlxntgzev6yijlvozy4cjvpwq2topoxv4xq", 182460934},
		{"bafybeiae6q5rs7axwa3fwklqd7qh5evrpua7pmvlroz67z5s3gk3vph44q", 53},
	}
	if len(root.Links) != len(want) {
		t.Fatalf("root has %d links", len(root.Links))
	}
	for i, w := range want {
		if got := root.Links[i]; got.Cid.String() != w.cid || got.Tsize != w.tsize {
			t.Errorf("link %d: %s tsize %d, boxo: %s tsize %d", i, got.Cid, got.Tsize, w.cid, w.tsize)
		}
	}
	if len(l.Nodes) != 3 {
		t.Errorf("%d nodes, want 3", len(l.Nodes))
	}
}

func TestBuildFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.cpeft")
	data, _ := io.ReadAll(testInput(mib + 1))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := FileCID(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.String() != golden[3].root {
		t.Fatalf("FileCID %s, want %s", c, golden[3].root)
	}
	if _, err := FileCID(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

type failingReader struct{ n int }

var errRead = errors.New("disk on fire")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errRead
	}
	p = p[:min(len(p), r.n)]
	clear(p)
	r.n -= len(p)
	return len(p), nil
}

func TestBuildReadError(t *testing.T) {
	for _, n := range []int{0, 10, ChunkSize, ChunkSize + 10} {
		if _, err := Build(&failingReader{n: n}); !errors.Is(err, errRead) {
			t.Errorf("after %d bytes: %v, want errRead", n, err)
		}
	}
}

// TestBuildRepeatedData covers identical leaves and subtrees (a zero file).
func TestBuildRepeatedData(t *testing.T) {
	l, err := Build(io.LimitReader(zeros{}, 5*mib))
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, l, 5*mib)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
