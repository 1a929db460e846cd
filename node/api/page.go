package api

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
)

// Page sizes of GET /v1/experts and /v1/status.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	// MaxListedProviders is how many providers an expert in a list
	// carries; ProviderCount has them all. GET /v1/experts/{cid} lists all.
	MaxListedProviders = 16
	maxCursor          = 4 << 10
)

// Page selects one page of experts: at most Limit, those after After.
// Experts are ordered local first, then by name, then by CID: the node's
// own experts lead whatever the swarm announces, and the order does not
// depend on when an expert was added, so a cursor stays valid while the
// list changes (keyset pagination).
type Page struct {
	Limit int
	After *ExpertKey // nil: from the start
}

// ExpertKey is an expert's place in the order.
type ExpertKey struct {
	Local bool
	Name  string
	CID   string
}

// KeyOf returns e's place in the order.
func KeyOf(e Expert) ExpertKey { return ExpertKey{Local: e.Local, Name: e.Name, CID: e.CID} }

// Compare orders keys: local first, then name, then CID.
func (k ExpertKey) Compare(o ExpertKey) int {
	if k.Local != o.Local {
		if k.Local {
			return -1
		}
		return 1
	}
	return cmp.Or(cmp.Compare(k.Name, o.Name), cmp.Compare(k.CID, o.CID))
}

// ExpertPage is one page of experts, the body of GET /v1/experts.
type ExpertPage struct {
	Experts []Expert `json:"experts"`
	// Total counts the experts that match, on all pages.
	Total int `json:"total"`
	// Next is the cursor of the next page; "" on the last.
	Next string `json:"next_cursor,omitempty"`
}

// ParsePage reads the limit and cursor query parameters: limit defaults to
// DefaultLimit and is capped at MaxLimit; cursor is a Next from an earlier
// page. Bad values are ErrBadRequest.
func ParsePage(q url.Values) (Page, error) {
	p := Page{Limit: DefaultLimit}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return Page{}, fmt.Errorf("%w: limit %q: want a number from 1 to %d", ErrBadRequest, s, MaxLimit)
		}
		p.Limit = min(n, MaxLimit)
	}
	if s := q.Get("cursor"); s != "" {
		k, err := decodeCursor(s)
		if err != nil {
			return Page{}, fmt.Errorf("%w: cursor: %v", ErrBadRequest, err)
		}
		p.After = &k
	}
	return p, nil
}

// Of returns the page p selects from all, which it sorts in place. Total
// is len(all); the listed experts carry at most MaxListedProviders.
func (p Page) Of(all []Expert) ExpertPage {
	slices.SortFunc(all, func(a, b Expert) int { return KeyOf(a).Compare(KeyOf(b)) })
	start := 0
	if p.After != nil {
		start, _ = slices.BinarySearchFunc(all, *p.After, func(e Expert, k ExpertKey) int {
			if c := KeyOf(e).Compare(k); c != 0 {
				return c
			}
			return -1 // the key itself sorts before its successors: skip it
		})
	}
	end := min(start+p.limit(), len(all))
	out := ExpertPage{Experts: slices.Clone(all[start:end]), Total: len(all)}
	for i := range out.Experts {
		e := &out.Experts[i]
		e.ProviderCount = len(e.Providers)
		if len(e.Providers) > MaxListedProviders {
			e.Providers = e.Providers[:MaxListedProviders:MaxListedProviders]
		}
	}
	if end < len(all) && end > start {
		out.Next = encodeCursor(KeyOf(all[end-1]))
	}
	return out
}

// Cut returns the first p.Limit elements of s.
func Cut[T any](s []T, p Page) []T {
	if n := p.limit(); len(s) > n {
		return s[:n:n]
	}
	return s
}

// limit is p.Limit, or DefaultLimit for the zero Page.
func (p Page) limit() int {
	if p.Limit < 1 {
		return DefaultLimit
	}
	return p.Limit
}

// A cursor is the last key of a page, as JSON in base64url: opaque to
// clients, who pass it back unchanged.
type cursor struct {
	L bool   `json:"l"`
	N string `json:"n"`
	C string `json:"c"`
}

func encodeCursor(k ExpertKey) string {
	b, _ := json.Marshal(cursor{L: k.Local, N: k.Name, C: k.CID})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (ExpertKey, error) {
	if len(s) > maxCursor {
		return ExpertKey{}, fmt.Errorf("longer than %d bytes", maxCursor)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return ExpertKey{}, fmt.Errorf("not a cursor this API returned: %w", err)
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil || c.C == "" {
		return ExpertKey{}, fmt.Errorf("not a cursor this API returned")
	}
	return ExpertKey{Local: c.L, Name: c.N, CID: c.C}, nil
}
