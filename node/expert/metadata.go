package expert

import "slices"

// Metadata describes an expert: what its container's header says (PEFT
// type, base model, rank, target modules, parameters, density) and what
// its publisher calls it, with the container's size. The expert's CID and
// publisher are not in it: each user keeps them in its own type (a string
// in JSON, a cid.Cid and a peer.ID in gossip).
type Metadata struct {
	Name          string   `json:"name,omitempty"`
	PeftType      string   `json:"peft_type,omitempty"` // e.g. "LORA"
	BaseModel     string   `json:"base_model,omitempty"`
	Rank          int      `json:"rank,omitempty"`
	TargetModules []string `json:"target_modules,omitempty"`
	Params        int64    `json:"params,omitempty"`  // adapter parameters
	Density       float64  `json:"density,omitempty"` // fraction of parameters kept, in [0, 1]
	Size          int64    `json:"size"`              // container bytes
}

// Equal reports whether m and o describe an expert the same way, field by
// field (a nil and an empty TargetModules are equal).
func (m Metadata) Equal(o Metadata) bool {
	return m.Name == o.Name && m.PeftType == o.PeftType && m.BaseModel == o.BaseModel && m.Rank == o.Rank &&
		slices.Equal(m.TargetModules, o.TargetModules) && m.Params == o.Params && m.Density == o.Density &&
		m.Size == o.Size
}
