package node

import (
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
		CID: m.CID, Name: m.Name, PeftType: m.PeftType, BaseModel: m.BaseModel, Rank: m.Rank,
		TargetModules: m.TargetModules, Params: m.Params, Density: m.Density, Size: m.Size,
		Publisher: m.Publisher, Added: m.Added, Local: true, Pinned: m.Pinned,
	}
}

func expertFromEntry(e gossip.Entry) api.Expert {
	a := e.Announcement
	x := api.Expert{
		CID: a.CID.String(), Name: a.Name, PeftType: a.PeftType, BaseModel: a.BaseModel, Rank: a.Rank,
		TargetModules: a.TargetModules, Params: a.Params, Density: a.Density, Size: a.Size,
		Publisher: a.Publisher.String(), Added: a.Time,
	}
	for _, p := range e.Providers {
		x.Providers = append(x.Providers, p.ID.String())
	}
	return x
}

func announcementFromMeta(m store.Meta, self peer.ID) (gossip.Announcement, error) {
	c, err := cid.Decode(m.CID)
	if err != nil {
		return gossip.Announcement{}, err
	}
	pub, err := peer.Decode(m.Publisher)
	if err != nil {
		pub = self
	}
	return gossip.Announcement{
		CID: c, Name: m.Name, PeftType: m.PeftType, BaseModel: m.BaseModel, Rank: m.Rank,
		TargetModules: m.TargetModules, Params: m.Params, Density: m.Density, Size: m.Size,
		Publisher: pub, Provider: self,
	}, nil
}

func metaFromEntry(e gossip.Entry) store.Meta {
	a := e.Announcement
	return store.Meta{
		CID: a.CID.String(), Name: a.Name, PeftType: a.PeftType, BaseModel: a.BaseModel, Rank: a.Rank,
		TargetModules: a.TargetModules, Params: a.Params, Density: a.Density, Size: a.Size,
		Publisher: a.Publisher.String(),
	}
}
