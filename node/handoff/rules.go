package handoff

import (
	"fmt"
	"path"
	"strings"

	gocid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Rule fields, the left side of an inference.want entry.
const (
	FieldCID       = "cid"
	FieldName      = "name"
	FieldBaseModel = "base_model"
	FieldPublisher = "publisher"
)

// Rule is one inference.want entry: experts whose Field matches Pattern are
// fetched and materialized as soon as gossip announces them.
type Rule struct {
	Field   string // one of the Field constants
	Pattern string // exact CID or peer ID; a path.Match glob for name and base_model
}

func (r Rule) String() string { return r.Field + "=" + r.Pattern }

// Candidate is an announced expert, as a Rule sees it.
type Candidate struct {
	CID, Name, BaseModel, Publisher string
}

// ParseRules parses inference.want entries of the form field=pattern:
//
//	cid=bafy...         that expert (any CID encoding; compared as CIDs)
//	name=python-*       experts whose name matches the path.Match glob
//	base_model=gpt2     experts for that base model (a glob; case is ignored,
//	                    as on the Hugging Face Hub; '*' does not match '/')
//	publisher=12D3...   experts published by that peer ID
func ParseRules(specs []string) ([]Rule, error) {
	rules := make([]Rule, 0, len(specs))
	for _, s := range specs {
		field, pat, ok := strings.Cut(strings.TrimSpace(s), "=")
		field, pat = strings.TrimSpace(field), strings.TrimSpace(pat)
		if !ok || pat == "" {
			return nil, fmt.Errorf("%w: %q: want field=pattern", ErrRule, s)
		}
		switch field {
		case FieldCID:
			if _, err := gocid.Decode(pat); err != nil {
				return nil, fmt.Errorf("%w: %q: %v", ErrRule, s, err)
			}
			pat = normalCID(pat)
		case FieldPublisher:
			id, err := peer.Decode(pat)
			if err != nil {
				return nil, fmt.Errorf("%w: %q: %v", ErrRule, s, err)
			}
			pat = id.String()
		case FieldName, FieldBaseModel:
			if field == FieldBaseModel {
				pat = strings.ToLower(pat)
			}
			if _, err := path.Match(pat, ""); err != nil {
				return nil, fmt.Errorf("%w: %q: %v", ErrRule, s, err)
			}
		default:
			return nil, fmt.Errorf("%w: %q: unknown field %q (want cid, name, base_model or publisher)", ErrRule, s, field)
		}
		rules = append(rules, Rule{Field: field, Pattern: pat})
	}
	return rules, nil
}

// Match reports whether any rule matches c. Rules not from ParseRules are
// compared as written.
func Match(rules []Rule, c Candidate) bool {
	for _, r := range rules {
		if r.match(c) {
			return true
		}
	}
	return false
}

func (r Rule) match(c Candidate) bool {
	switch r.Field {
	case FieldCID:
		n := normalCID(c.CID)
		return c.CID != "" && (c.CID == r.Pattern || n != "" && n == normalCID(r.Pattern))
	case FieldPublisher:
		n := normalPeer(c.Publisher)
		return c.Publisher != "" && (c.Publisher == r.Pattern || n != "" && n == normalPeer(r.Pattern))
	case FieldName:
		ok, _ := path.Match(r.Pattern, c.Name)
		return c.Name != "" && ok
	case FieldBaseModel:
		ok, _ := path.Match(strings.ToLower(r.Pattern), strings.ToLower(c.BaseModel))
		return c.BaseModel != "" && ok
	}
	return false
}

// normalCID returns s as a CIDv1 string in the default base, "" if s is
// not a CID: a CIDv0 names the same dag-pb node as its CIDv1.
func normalCID(s string) string {
	c, err := gocid.Decode(s)
	if err != nil {
		return ""
	}
	if c.Version() == 0 {
		c = gocid.NewCidV1(gocid.DagProtobuf, c.Hash())
	}
	return c.String()
}

func normalPeer(s string) string {
	id, err := peer.Decode(s)
	if err != nil {
		return ""
	}
	return id.String()
}
