package fetch

import (
	"fmt"

	"github.com/expertd/expertd/node/unixfs"
	pb "github.com/expertd/expertd/proto"
)

// offer decides what a provider sends for the asked ranges: the asked
// leaves it holds (a node still fetching the expert holds some), and while
// other peers are served too, at most LoadedShare of them: those of the
// expert's leaves it has sent least, ties at random (BitTorrent's "super
// seeding"), so that peers fetching a new expert at once get different
// leaves from its publisher and trade them. have is the bitmap of every
// leaf held, sent only when some leaf is missing.
func (p *Provider) offer(layout *unixfs.Layout, asked []*pb.LeafRange, loaded bool) (ranges []*pb.LeafRange, have []byte, err error) {
	held, whole, err := p.offerable(layout)
	if err != nil {
		return nil, nil, err
	}
	partial := !whole
	if partial { // the holdings say which asked leaves to offer
		have = held
	}
	var idx []uint64
	for _, r := range asked {
		for i := r.GetStart(); i < r.GetEnd(); i++ {
			if !partial || have[i/8]&(1<<(i%8)) != 0 {
				idx = append(idx, i)
			}
		}
	}
	if share := p.opts.LoadedShare; loaded && share > 0 && len(idx) > share {
		idx = p.sent.least(layout.Root, len(layout.Leaves), idx, share)
	}
	if !partial && len(idx) == countLeaves(asked) {
		return asked, nil, nil
	}
	return toRanges(idx), have, nil
}

func countLeaves(rs []*pb.LeafRange) int {
	n := 0
	for _, r := range rs {
		n += int(r.GetEnd() - r.GetStart())
	}
	return n
}

// decodeHave checks a header's have bitmap against n leaves; nil means
// every leaf is held.
func decodeHave(have []byte, n uint64) ([]bool, error) {
	if len(have) == 0 {
		return nil, nil
	}
	if uint64(len(have)) != (n+7)/8 {
		return nil, fmt.Errorf("%w: have bitmap of %d bytes for %d leaves", ErrFrame, len(have), n)
	}
	out := make([]bool, n)
	for i := range out {
		out[i] = have[i/8]&(1<<(i%8)) != 0
	}
	return out, nil
}
