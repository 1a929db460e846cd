package node

import (
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/gossip"
	"github.com/expertd/expertd/node/store"
)

// The node converts between the store's, gossip's and the API's views of an
// expert here and nowhere else.

func expertFromMeta(m store.Meta) api.Expert {
	return api.Expert{
		CID: m.CID, Metadata: m.Metadata, Publisher: m.Publisher, Added: m.Added, Local: true,
		Pinned: m.Pinned, Signed: len(m.Envelope) > 0, Merge: mergeOf(m.Envelope),
	}
}

func expertFromEntry(e gossip.Entry) api.Expert {
	a := e.Announcement
	x := api.Expert{
		CID: a.CID.String(), Metadata: a.Metadata, Publisher: a.Publisher.String(), Added: a.Time,
		Signed: e.Signed, Version: a.Version, Merge: mergeOf(entryEnvelope(e)),
	}
	for _, p := range e.Providers {
		x.Providers = append(x.Providers, p.ID.String())
	}
	return x
}

// announcementFromMeta is what this node announces for a stored expert:
// the publisher's signed publication when there is one (peers check the
// metadata against it), else the store's metadata, unsigned.
func announcementFromMeta(m store.Meta, self peer.ID) (gossip.Announcement, error) {
	if len(m.Envelope) > 0 {
		if a, err := gossip.OpenPublication(m.Envelope); err == nil && a.CID.String() == m.CID {
			a.Provider, a.Time = self, time.Time{}
			return a, nil
		}
	}
	c, err := cid.Decode(m.CID)
	if err != nil {
		return gossip.Announcement{}, err
	}
	pub, err := peer.Decode(m.Publisher)
	if err != nil {
		pub = self
	}
	return gossip.Announcement{CID: c, Metadata: m.Metadata, Publisher: pub, Provider: self}, nil
}

func metaFromEntry(e gossip.Entry) store.Meta {
	a := e.Announcement
	return store.Meta{CID: a.CID.String(), Metadata: a.Metadata, Publisher: a.Publisher.String(), Envelope: entryEnvelope(e)}
}

func entryEnvelope(e gossip.Entry) []byte {
	if e.Signed {
		return e.Envelope
	}
	return nil
}
