package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/expertd/expertd/node/api"
)

// testCID is a CID of its own for each i.
func testCID(t *testing.T, i int) cid.Cid {
	t.Helper()
	h, err := multihash.Sum(fmt.Appendf(nil, "expert %d", i), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

// A second add of a running transfer joins it (and may mark it requested);
// once it ended, an add starts a new one.
func TestTransfersAddJoins(t *testing.T) {
	ts := newTransfers()
	c := testCID(t, 0)
	now := time.Now()
	a, ctx, started := ts.add(context.Background(), c, false, now)
	if !started || ctx == nil || a.isRequested() {
		t.Fatalf("first add: started %v ctx %v requested %v", started, ctx, a.isRequested())
	}
	b, _, started := ts.add(context.Background(), c, true, now)
	if started || b != a || !a.isRequested() {
		t.Fatalf("second add: started %v same %v requested %v", started, b == a, a.isRequested())
	}
	a.finish(nil, now)
	if ctx.Err() == nil {
		t.Error("the transfer's context lives on after it finished")
	}
	c2, _, started := ts.add(context.Background(), c, false, now)
	if !started || c2 == a {
		t.Fatal("add after the transfer ended did not start a new one")
	}
}

// done is closed when the transfer finishes, and outcome says how.
func TestTransferDone(t *testing.T) {
	ts := newTransfers()
	tr, _, _ := ts.add(context.Background(), testCID(t, 0), false, time.Now())
	select {
	case <-tr.done:
		t.Fatal("done closed while running")
	default:
	}
	boom := errors.New("boom")
	got := tr.finish(boom, time.Now())
	<-tr.done
	if !errors.Is(tr.outcome(), boom) || got.State != api.StateFailed || got.Error != "boom" {
		t.Fatalf("finished %+v, outcome %v", got, tr.outcome())
	}
}

// Reads never forget a transfer: they hide one past transferKeep, and add
// is where it is dropped.
func TestTransfersPruneOnlyOnAdd(t *testing.T) {
	ts := newTransfers()
	start := time.Now()
	old, _, _ := ts.add(context.Background(), testCID(t, 0), false, start)
	old.finish(nil, start)
	later := start.Add(transferKeep + time.Second)
	if _, ok := ts.get(old.cid, later); ok {
		t.Error("get returns a transfer past transferKeep")
	}
	if l := ts.list(later); len(l) != 0 {
		t.Errorf("list shows %d transfers past transferKeep", len(l))
	}
	if len(ts.m) != 1 {
		t.Fatalf("a read deleted the entry: %d left", len(ts.m))
	}
	ts.add(context.Background(), testCID(t, 1), false, later)
	if _, ok := ts.m[old.cid.String()]; ok || len(ts.m) != 1 {
		t.Fatalf("add kept the expired transfer: %d entries", len(ts.m))
	}
}

// At most maxFinished finished transfers are kept, the newest; running
// ones are never dropped.
func TestTransfersBounded(t *testing.T) {
	ts := newTransfers()
	now := time.Now()
	running, _, _ := ts.add(context.Background(), testCID(t, -1), false, now)
	for i := range maxFinished + 10 {
		tr, _, _ := ts.add(context.Background(), testCID(t, i), false, now)
		tr.finish(nil, now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(ts.m); n != maxFinished+1 {
		t.Fatalf("%d transfers kept, want %d finished and the running one", n, maxFinished)
	}
	if _, ok := ts.m[running.cid.String()]; !ok {
		t.Fatal("the running transfer was dropped")
	}
	if _, ok := ts.m[testCID(t, 0).String()]; ok {
		t.Fatal("the oldest finished transfer was kept")
	}
	if l := ts.list(now); len(l) != maxFinished+1 {
		t.Fatalf("list of %d", len(l))
	}
}

// list is newest first.
func TestTransfersListNewestFirst(t *testing.T) {
	ts := newTransfers()
	now := time.Now()
	for i := range 3 {
		ts.add(context.Background(), testCID(t, i), false, now.Add(time.Duration(i)*time.Second))
	}
	l := ts.list(now)
	for i, tr := range l {
		if want := testCID(t, 2-i).String(); tr.CID != want {
			t.Fatalf("list[%d] is %s, want %s", i, tr.CID, want)
		}
	}
}
