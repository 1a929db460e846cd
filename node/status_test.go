package node

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
)

// TestStatusNamesAndProviders: the status page's data names the expert of a
// transfer, and lists the other peers that provide a local expert (not this
// node), so a node holding what its peer holds does not look alone.
func TestStatusNamesAndProviders(t *testing.T) {
	if testing.Short() {
		t.Skip("two libp2p nodes")
	}
	a := startNode(t, nil, nil)
	b := startNode(t, addr(a), nil)
	waitMesh(t, a, b)
	abs, _ := filepath.Abs(fixture)
	pub, err := a.Publish(context.Background(), api.PublishRequest{Path: abs, Name: "python"})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "b sees the announcement", func() bool { return known(b, pub.CID) })
	waitFetched(t, b, pub.CID)

	st := b.Status(api.Page{Limit: api.DefaultLimit})
	if len(st.Transfers) != 1 || st.Transfers[0].CID != pub.CID || st.Transfers[0].Name != "python" {
		t.Errorf("b's transfers: %+v", st.Transfers)
	}
	provides := func(n *Node, p *Node) bool {
		for _, e := range n.Status(api.Page{Limit: api.DefaultLimit}).Experts {
			if e.CID == pub.CID && e.Local {
				if slices.Contains(e.Providers, n.Identity().ID) {
					t.Fatalf("%s lists itself as a provider of its own expert", n.Identity().ID)
				}
				return slices.Contains(e.Providers, p.Identity().ID)
			}
		}
		return false
	}
	testutil.Eventually(t, 10*time.Second, "a lists b as a provider of its local expert", func() bool { return provides(a, b) })
	testutil.Eventually(t, 10*time.Second, "b lists a as a provider of its local expert", func() bool { return provides(b, a) })
	if c := a.Status(api.Page{Limit: api.DefaultLimit}).Counts; c.LocalExperts != 1 || c.RemoteExperts != 0 {
		t.Errorf("a's counts: %+v", c)
	}
}
