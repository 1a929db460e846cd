package gossip

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestViewPage: walking a view page by page, from cursor to cursor, lists
// what List lists, in its order, for any page size and filter; expired
// experts are in neither.
func TestViewPage(t *testing.T) {
	v, clk := newTestView(time.Hour, 0)
	peers := testPeers(t, 3)
	for i := range 200 {
		a := clk.ann(i, peers[i%3])
		a.Name = fmt.Sprintf("expert-%d", i%37) // names shared: the CID orders them
		if i%5 == 0 {
			a.BaseModel = "mistral-7b"
		}
		if i == 7 {
			a.Time = clk.t.Add(-59 * time.Minute) // expires below
		}
		v.Add(a)
	}
	clk.add(2 * time.Minute)
	for _, f := range []Filter{{}, {BaseModel: "MISTRAL-7B"}, {Name: "expert-1"}, {PeftType: "ia3"}} {
		want := v.List(f)
		for _, size := range []int{1, 7, 199, 500} {
			var got []Entry
			after := Cursor{}
			for pages := 0; ; pages++ {
				if pages > len(want)+1 {
					t.Fatalf("filter %+v, pages of %d: no end", f, size)
				}
				page, more := v.Page(f, after, size)
				if len(page) > size || more && len(page) < size {
					t.Fatalf("filter %+v: a page of %d entries of %d, more %v", f, len(page), size, more)
				}
				got = append(got, page...)
				if !more {
					break
				}
				// Through its string form, as an API client would.
				c, err := ParseCursor(CursorOf(page[len(page)-1]).String())
				if err != nil {
					t.Fatal(err)
				}
				after = c
			}
			if !slices.EqualFunc(got, want, func(a, b Entry) bool { return a.CID == b.CID && len(a.Providers) == len(b.Providers) }) {
				t.Fatalf("filter %+v, pages of %d: %d entries, List has %d", f, size, len(got), len(want))
			}
		}
	}
	if all := v.List(Filter{}); len(all) != 199 {
		t.Fatalf("List: %d entries, want 199 (one expired)", len(all))
	}
	if page, more := v.Page(Filter{}, Cursor{}, 0); page != nil || more {
		t.Fatal("a page of 0")
	}
}

func TestCursorString(t *testing.T) {
	c := Cursor{Name: "a.b/ü?&=", CID: testCID(1)}
	got, err := ParseCursor(c.String())
	if err != nil || got != c {
		t.Fatalf("round trip of %+v: %+v, %v", c, got, err)
	}
	if (Cursor{}).String() != "" {
		t.Fatal("zero cursor not empty")
	}
	if got, err := ParseCursor(""); err != nil || got != (Cursor{}) {
		t.Fatalf("empty cursor: %+v %v", got, err)
	}
	for _, s := range []string{"nodot", "!!.x", "YQ.notacid", "YQ." + string(make([]byte, 1000))} {
		if _, err := ParseCursor(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseCursor(%q): %v", s, err)
		}
	}
}

// TestViewScanAndCounts: Scan visits every live expert once and stops
// when told; Counts counts them.
func TestViewScanAndCounts(t *testing.T) {
	v, clk := newTestView(time.Hour, 0)
	p, q := testPeer(t), testPeer(t)
	for i := range 10 {
		v.Add(clk.ann(i, p))
	}
	v.Add(clk.ann(0, q))
	old := clk.ann(100, q)
	old.Time = clk.t.Add(-59 * time.Minute)
	v.Add(old)
	clk.add(2 * time.Minute)
	seen := map[string]int{}
	v.Scan(func(e Entry) bool { seen[e.CID.String()]++; return true })
	if len(seen) != 10 {
		t.Fatalf("Scan visited %d experts, want 10", len(seen))
	}
	for c, n := range seen {
		if n != 1 {
			t.Fatalf("%s visited %d times", c, n)
		}
	}
	n := 0
	v.Scan(func(Entry) bool { n++; return n < 3 })
	if n != 3 {
		t.Fatalf("Scan went on after false: %d calls", n)
	}
	if c := v.Counts(); c.Experts != 10 || c.Pairs != 12 || c.Providers != 2 || c.Bytes <= 0 {
		t.Fatalf("counts %+v", c)
	}
	checkView(t, v)
}
