package api

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/expertd/expertd/node/expert"
)

// experts returns n experts, local ones among them, in random order, some
// sharing a name.
func someExperts(n int) []Expert {
	out := make([]Expert, n)
	for i := range out {
		out[i] = Expert{CID: fmt.Sprintf("bafk%06d", i), Metadata: expert.Metadata{
			Name: fmt.Sprintf("e-%03d", i%300),
		}, Local: i%7 == 0}
	}
	rand.Shuffle(n, func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// walk pages through all with limit and returns the CIDs seen in order.
func walk(t *testing.T, all []Expert, limit int) []string {
	t.Helper()
	var seen []string
	p := Page{Limit: limit}
	for range len(all) + 1 {
		pg := p.Of(slices.Clone(all))
		if pg.Total != len(all) || len(pg.Experts) > limit {
			t.Fatalf("page of %d (total %d) with limit %d over %d", len(pg.Experts), pg.Total, limit, len(all))
		}
		for _, e := range pg.Experts {
			seen = append(seen, e.CID)
		}
		if pg.Next == "" {
			return seen
		}
		q, err := ParsePage(url.Values{"cursor": {pg.Next}, "limit": {fmt.Sprint(limit)}})
		if err != nil {
			t.Fatal(err)
		}
		p = q
	}
	t.Fatal("paging did not end")
	return nil
}

func TestPageOrderAndCursor(t *testing.T) {
	all := someExperts(1000)
	// One page holds them all: local first, then name, then CID.
	p := Page{Limit: MaxLimit}.Of(slices.Clone(all))
	if !slices.IsSortedFunc(p.Experts, func(a, b Expert) int { return KeyOf(a).Compare(KeyOf(b)) }) ||
		!p.Experts[0].Local || p.Experts[len(all)-1].Local || p.Next != "" {
		t.Fatal("not in order")
	}
	var want []string
	for _, e := range p.Experts {
		want = append(want, e.CID)
	}
	for _, limit := range []int{7, 100, 999} {
		if seen := walk(t, all, limit); !slices.Equal(seen, want) {
			t.Fatalf("limit %d: paging saw %d experts, not each once in order", limit, len(seen))
		}
	}

	// A cursor stays valid while the list changes: what was after it is
	// still listed, once.
	first := Page{Limit: 100}.Of(slices.Clone(all))
	after, _ := ParsePage(url.Values{"cursor": {first.Next}})
	changed := append(slices.Clone(all[:500]), someExperts(50)[:10]...) // half removed, 10 back
	changed = append(changed, Expert{CID: "bafkzzz", Metadata: expert.Metadata{
		Name: "a-new-one",
	}}, Expert{CID: "bafkyyy", Metadata: expert.Metadata{Name: "zz-new"}, Local: true})
	rest := after.Of(changed)
	last := KeyOf(first.Experts[len(first.Experts)-1])
	for _, e := range rest.Experts {
		if KeyOf(e).Compare(last) <= 0 {
			t.Fatalf("%v listed again after the cursor %v", e, last)
		}
	}

	// Providers are capped in lists, counted in full.
	many := []Expert{{CID: "bafkp", Providers: make([]string, 40)}}
	if e := (Page{}).Of(many).Experts[0]; len(e.Providers) != MaxListedProviders || e.ProviderCount != 40 {
		t.Fatalf("providers %d, count %d", len(e.Providers), e.ProviderCount)
	}
	if len(many[0].Providers) != 40 {
		t.Fatal("Of cut the caller's providers")
	}
}

func TestParsePage(t *testing.T) {
	for q, want := range map[string]int{"": DefaultLimit, "limit=5": 5, "limit=1000": 1000, "limit=5000": MaxLimit} {
		v, _ := url.ParseQuery(q)
		if p, err := ParsePage(v); err != nil || p.Limit != want || p.After != nil {
			t.Errorf("%q: %+v %v, want limit %d", q, p, err, want)
		}
	}
	for _, q := range []string{"limit=0", "limit=-1", "limit=ten", "cursor=%25%25", "cursor=bm90IGpzb24", "cursor=" + strings.Repeat("A", 5000)} {
		v, _ := url.ParseQuery(q)
		if _, err := ParsePage(v); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%q: %v, want ErrBadRequest", q, err)
		}
	}
}

// TestAPIPaging: over HTTP, one call returns a bounded page however many
// experts the node knows; the client pages through all; bad paging
// parameters are 400.
func TestAPIPaging(t *testing.T) {
	c, b := newTestAPI(t, "")
	b.experts = map[string]Expert{}
	for _, e := range someExperts(2500) {
		e.Providers = make([]string, 100)
		for i := range e.Providers {
			e.Providers[i] = fmt.Sprintf("12D3KooWSybil%040d", i)
		}
		b.experts[e.CID] = e
	}
	b.status = Status{Experts: slices.Collect(func(yield func(Expert) bool) {
		for _, e := range b.experts {
			if !yield(e) {
				return
			}
		}
	})}
	ctx := context.Background()
	all, err := c.Experts(ctx, Filter{})
	if err != nil || len(all) != 2500 {
		t.Fatalf("client: %d experts, %v", len(all), err)
	}
	pg, err := c.ExpertPage(ctx, Filter{}, 0, "")
	if err != nil || len(pg.Experts) != DefaultLimit || pg.Total != 2500 || pg.Next == "" {
		t.Fatalf("first page: %d of %d, next %q, %v", len(pg.Experts), pg.Total, pg.Next, err)
	}
	st, err := c.Status(ctx)
	if err != nil || len(st.Experts) != DefaultLimit || st.ExpertsNext == "" || st.Counts.LocalExperts+st.Counts.RemoteExperts != 2500 {
		t.Fatalf("status: %d experts, next %q, counts %+v, %v", len(st.Experts), st.ExpertsNext, st.Counts, err)
	}
	for _, path := range []string{"/v1/status", "/v1/experts", "/v1/status?limit=1000", "/v1/experts?limit=100000"} {
		resp, body := get(t, c.base+path, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		// 1000 experts of 16 listed providers (~60 bytes each), with
		// indentation: bounded, whatever the view holds.
		if len(body) > 2<<20 {
			t.Errorf("%s: %d bytes", path, len(body))
		}
		t.Logf("%s: %d bytes", path, len(body))
	}
	for _, path := range []string{"/v1/experts?limit=0", "/v1/experts?cursor=garbage!", "/v1/status?limit=x"} {
		if resp, _ := get(t, c.base+path, ""); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", path, resp.StatusCode)
		}
	}
}
