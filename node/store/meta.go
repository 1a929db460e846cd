package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/node/expert"
)

// Meta describes an indexed expert. The store sets CID, Size, Added and
// LastUsed; the rest is the caller's, except that Add and Complete fill the
// fields the caller leaves zero from the container's header when the
// expert is a .cpeft container.
type Meta struct {
	CID string `json:"cid"` // root CID of the container
	expert.Metadata
	SourceBytes int64     `json:"source_bytes,omitempty"`
	Publisher   string    `json:"publisher,omitempty"` // peer ID
	Added       time.Time `json:"added"`
	LastUsed    time.Time `json:"last_used"`
	// Pinned experts are never evicted. Published experts are pinned by
	// the caller; an entry rebuilt at Open is pinned, since whether it
	// was is lost.
	Pinned bool `json:"pinned"`
	// Requested: this node's user asked for the expert by its CID (an
	// explicit fetch), which vouches for it as publishing it here does.
	// Like Pinned it is the caller's, never filled, and lost when an entry
	// is rebuilt.
	Requested bool `json:"requested,omitempty"`
	// Envelope is the expert's publication as its publisher signed it (a
	// libp2p signed envelope), kept to be announced with it; nil if it
	// has none. The store keeps it as given, never reading it: when set,
	// it and not the fields above is what vouches for the expert's
	// metadata. Like the other descriptive fields, it is filled in when
	// zero (Add, Complete) and lost when an entry is rebuilt.
	Envelope []byte `json:"envelope,omitempty"`
}

// clone returns a copy of m that shares no memory with it.
func (m Meta) clone() Meta {
	m.TargetModules = slices.Clone(m.TargetModules)
	m.Envelope = slices.Clone(m.Envelope)
	return m
}

// fill sets the zero descriptive fields of m from o.
func (m *Meta) fill(o Meta) {
	set := func(dst *string, src string) {
		if *dst == "" {
			*dst = src
		}
	}
	set(&m.Name, o.Name)
	set(&m.PeftType, o.PeftType)
	set(&m.BaseModel, o.BaseModel)
	set(&m.Publisher, o.Publisher)
	if m.Rank == 0 {
		m.Rank = o.Rank
	}
	if len(m.TargetModules) == 0 {
		m.TargetModules = slices.Clone(o.TargetModules)
	}
	if m.Params == 0 {
		m.Params = o.Params
	}
	if m.Density == 0 {
		m.Density = o.Density
	}
	if m.SourceBytes == 0 {
		m.SourceBytes = o.SourceBytes
	}
	if len(m.Envelope) == 0 {
		m.Envelope = slices.Clone(o.Envelope)
	}
}

// MetaFromHeader returns what a container header says about its expert:
// peft type, params, density, source bytes and, from the adapter config it
// carries, base model, rank and target modules.
func MetaFromHeader(h *compress.Header) Meta {
	m := Meta{Metadata: expert.Metadata{PeftType: h.PeftType, Density: h.Density}, SourceBytes: h.SourceBytes}
	for i := range h.Tensors {
		m.Params += h.Tensors[i].Elements()
	}
	var cfg struct {
		BaseModel     string          `json:"base_model_name_or_path"`
		Rank          int             `json:"r"`
		TargetModules json.RawMessage `json:"target_modules"`
	}
	if json.Unmarshal([]byte(h.Config), &cfg) != nil {
		return m // a config that is not JSON describes nothing more
	}
	m.BaseModel, m.Rank = cfg.BaseModel, cfg.Rank
	var list []string
	var one string
	switch {
	case json.Unmarshal(cfg.TargetModules, &list) == nil:
		m.TargetModules = list
	case json.Unmarshal(cfg.TargetModules, &one) == nil && one != "":
		m.TargetModules = []string{one} // PEFT also accepts a regular expression
	}
	return m
}

// encodeMeta returns the index entry file of m.
func encodeMeta(m Meta) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("store: encoding entry %s: %w", m.CID, err)
	}
	return append(b, '\n'), nil
}

// decodeMeta parses the index entry file of root.
func decodeMeta(root cid.Cid, data []byte) (Meta, error) {
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return Meta{}, err
	}
	if m.CID != root.String() {
		return Meta{}, fmt.Errorf("entry names %q", m.CID)
	}
	if m.Size < 0 {
		return Meta{}, fmt.Errorf("negative size %d", m.Size)
	}
	return m, nil
}
