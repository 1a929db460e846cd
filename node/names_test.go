package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/fetch"
	"github.com/expertd/expertd/node/gossip"
	"github.com/expertd/expertd/node/store"
)

// retrained returns a copy of the fixture adapter whose config says
// lora_alpha alpha: new bytes, a new CID, as a retrained expert has.
func retrained(t *testing.T, alpha int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), fmt.Sprintf("team-sql-%d", alpha))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(fixture, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "adapter_config.json" {
			b = bytes.Replace(b, []byte(`"lora_alpha": 32,`), fmt.Appendf(nil, `"lora_alpha": %d,`, alpha), 1)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func publishAs(t *testing.T, n *Node, dir, name string) api.Expert {
	t.Helper()
	e, err := n.Publish(context.Background(), api.PublishRequest{Path: dir, Name: name})
	if err != nil {
		t.Fatalf("publish %s as %q: %v", dir, name, err)
	}
	return e
}

// TestPublishVersions: publishing a name again with new bytes makes the
// next version; the same bytes stay the version they are; another
// spelling of the name is refused; the counters survive in the data dir.
func TestPublishVersions(t *testing.T) {
	n := startNode(t, nil, nil)
	v1 := publishAs(t, n, retrained(t, 32), "team-sql")
	v2 := publishAs(t, n, retrained(t, 33), "team-sql")
	again := publishAs(t, n, retrained(t, 32), "team-sql")
	other := publishAs(t, n, retrained(t, 40), "team-py")
	if v1.Version != 1 || v2.Version != 2 || again.CID != v1.CID || again.Version != 1 || other.Version != 1 {
		t.Fatalf("versions %d, %d, again %d (%s), team-py %d", v1.Version, v2.Version, again.Version, again.CID, other.Version)
	}
	if e := publishAs(t, n, retrained(t, 41), "team/sql"); e.Version != 1 {
		t.Errorf("team/sql (the name team_sql, not team-sql): version %d", e.Version)
	}
	for i, c := range [][2]string{{"Team-SQL", "team-sql"}, {"TEAM-sql", "team-sql"}, {"team sql", "team/sql"}, {"team_sql", "team/sql"}} {
		_, err := n.Publish(context.Background(), api.PublishRequest{Path: retrained(t, 50+i), Name: c[0]})
		if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), `"`+c[1]+`"`) {
			t.Errorf("publish as %q: %v, want a conflict naming %q", c[0], err, c[1])
		}
	}
	doc, err := os.ReadFile(filepath.Join(n.cfg.DataDir(), VersionsFile))
	if err != nil {
		t.Fatal(err)
	}
	counters, err := decodeVersions(doc)
	if err != nil || counters["team-sql"].Last != 2 || counters["team-py"].Last != 1 {
		t.Fatalf("%s: %v %+v", VersionsFile, err, counters)
	}
	info, err := n.Name("TEAM-SQL")
	if err != nil || info.Resolved == nil || info.Resolved.CID != v2.CID || len(info.Versions) != 2 || info.Versions[1].CID != v1.CID {
		t.Fatalf("name: %+v %v", info, err)
	}
	if _, err := n.Name("team-go"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("an unknown name: %v", err)
	}
	// The version is signed: the announcement of version 1 says 1.
	m, _ := n.store.Get(cid.MustParse(v1.CID))
	a, err := gossip.OpenPublication(m.Envelope)
	if err != nil || a.Version != 1 || a.Name != "team-sql" {
		t.Fatalf("publication %+v %v", a, err)
	}
	// It signs the outboard of the stored bytes: fetchers check each piece
	// against it.
	rc, err := n.store.Open(context.Background(), cid.MustParse(v1.CID))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ob, err := fetch.Outboard(rc)
	if err != nil {
		t.Fatal(err)
	}
	if h := sha256.Sum256(ob); !bytes.Equal(a.Outboard, h[:]) {
		t.Fatalf("publication's outboard hash %x, the stored bytes' %x", a.Outboard, h)
	}
}

// TestVersionCounters: numbers are never given twice, restarts included;
// another spelling of a counted name is refused.
func TestVersionCounters(t *testing.T) {
	dir := t.TempDir()
	c := newVersionCounters(dir)
	for want, floor := range []uint64{0, 0, 5} {
		got, err := c.next("team-sql", floor)
		if err != nil || (want < 2 && got != uint64(want+1)) || (want == 2 && got != 6) {
			t.Fatalf("next with floor %d: %d, %v", floor, got, err)
		}
	}
	again := newVersionCounters(dir) // a restart
	if got, err := again.next("team-sql", 0); err != nil || got != 7 {
		t.Fatalf("after a restart: %d, %v", got, err)
	}
	if s, ok, err := again.spelling("TEAM-SQL"); err != nil || !ok || s != "team-sql" {
		t.Errorf("spelling: %q %v %v", s, ok, err)
	}
	if _, err := again.next("Team-SQL", 0); err == nil {
		t.Error("another spelling was counted")
	}
	if err := os.WriteFile(filepath.Join(dir, VersionsFile), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newVersionCounters(dir).next("team-sql", 0); err == nil {
		t.Error("a damaged counters file was overwritten: its numbers would be given again")
	}
}

// TestDecodeVersions: the counters file is checked entry by entry.
func TestDecodeVersions(t *testing.T) {
	good := `{"version":1,"names":{"team-sql":{"name":"Team-SQL","last":3}}}`
	if m, err := decodeVersions([]byte(good)); err != nil || m["team-sql"].Last != 3 {
		t.Fatalf("%v %+v", err, m)
	}
	for _, bad := range []string{
		`{"version":2,"names":{}}`,
		`{"version":1,"names":{"team-py":{"name":"team-sql","last":3}}}`,
		`{"version":1,"names":{"team-sql":{"name":"team-sql","last":0}}}`,
		`{"version":1,"names":{"team-sql":{"name":"team-sql","last":9007199254740992}}}`,
		`{"version":1,"names":{"team-sql":{"name":"team-sql\u202e","last":1}}}`,
		`[]`, ``,
	} {
		if _, err := decodeVersions([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func FuzzDecodeVersions(f *testing.F) {
	f.Add([]byte(`{"version":1,"names":{"team-sql":{"name":"Team-SQL","last":3}}}`))
	f.Add([]byte(`{"version":1,"names":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeVersions(b)
		if err != nil {
			return
		}
		for k, v := range m {
			if v.Last == 0 || v.Last > gossip.MaxVersion || k == "" {
				t.Fatalf("accepted %q: %+v", k, v)
			}
		}
	})
}

// linked returns the CID the adapters dir's name points at.
func linked(t *testing.T, adapters, name string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(adapters, name))
	if err != nil {
		return ""
	}
	c, _, _ := strings.Cut(filepath.Base(target), "-")
	return c
}

// TestFollowName: a node whose want rule follows a name fetches each new
// version of the trusted publisher's line, moves the name to it (the old
// version's directory kept for the grace period), pins it and unpins the
// one it replaced. An untrusted publisher's expert of the same name is
// listed, untrusted, and never takes the name; the user may still look it
// up by naming its publisher. An older version fetched by CID does not
// roll the name back.
func TestFollowName(t *testing.T) {
	if testing.Short() {
		t.Skip("three libp2p nodes")
	}
	pub := startNode(t, nil, nil)
	squatter := startNode(t, addr(pub), nil)
	adapters := t.TempDir()
	f := startNode(t, addr(pub), map[string]any{
		"inference.adapters_dir": adapters, "inference.want": []string{"name=team-*"},
		"trust.publishers": []string{pub.Identity().ID},
	})
	waitMesh(t, pub, squatter, f)
	// Flood publishing reaches the first hop only; the mesh forms at the
	// first heartbeat.
	testutil.Eventually(t, 10*time.Second, "a gossip mesh", func() bool { return len(pub.gossip.TopicPeers()) >= 2 })

	v1 := publishAs(t, pub, retrained(t, 32), "team-sql")
	testutil.Eventually(t, 30*time.Second, "version 1 in service", func() bool { return linked(t, adapters, "team-sql") == v1.CID })
	v2 := publishAs(t, pub, retrained(t, 33), "team-sql")
	testutil.Eventually(t, 30*time.Second, "version 2 in service", func() bool { return linked(t, adapters, "team-sql") == v2.CID })
	testutil.Eventually(t, 10*time.Second, "version 2 pinned, version 1 unpinned", func() bool {
		e1, err1 := f.Expert(v1.CID)
		e2, err2 := f.Expert(v2.CID)
		return err1 == nil && err2 == nil && e2.Pinned && !e1.Pinned
	})
	vs, _ := os.ReadDir(filepath.Join(adapters, ".versions"))
	if len(vs) < 2 {
		t.Errorf("the replaced version's directory went at once: %v", vs)
	}
	if st := f.Status(api.Page{Limit: 10}); len(st.Adapters) != 1 || st.Adapters[0].ExpertVersion != 2 || st.Adapters[0].Publisher != pub.Identity().ID {
		t.Errorf("status adapters %+v", st.Adapters)
	}
	for _, a := range f.catalog() {
		if a.CID.String() == v1.CID {
			t.Error("the follower's catalog still offers the superseded version 1")
		}
	}

	// Someone else's team-sql: listed, untrusted, never fetched.
	sq := publishAs(t, squatter, retrained(t, 50), "Team-SQL")
	testutil.Eventually(t, 30*time.Second, "the squatter's expert known", func() bool { return known(f, sq.CID) })
	if e, _ := f.Expert(sq.CID); e.Trusted || e.Local || e.Version != 1 {
		t.Errorf("the squatter's expert %+v", e)
	}
	info, err := f.Name("team-sql")
	if err != nil || info.Resolved == nil || info.Resolved.CID != v2.CID || !info.Resolved.InService || len(info.Versions) != 3 {
		t.Fatalf("name: %+v %v", info, err)
	}
	mine, err := f.Name(squatter.Identity().ID + "/team-sql")
	if err != nil || mine.Resolved == nil || mine.Resolved.CID != sq.CID || mine.Resolved.Trusted {
		t.Errorf("the squatter's line by name: %+v %v", mine, err)
	}
	if _, err := f.Resolve(context.Background(), squatter.Identity().ID+"/team-sql", api.ResolveRequest{}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("the inference server resolved an untrusted publisher's line: %v", err)
	}

	// The user fetches version 1 by CID (it may have been evicted): the
	// name stays with version 2.
	waitFetched(t, f, v1.CID) // the hand-off skips it at once, known superseded
	if !f.superseded(mustMeta(t, f, v1.CID)) {
		t.Error("version 1 is not known superseded")
	}
	if got := linked(t, adapters, "team-sql"); got != v2.CID {
		t.Errorf("the name points at %s after fetching version 1", got)
	}
	if got := linked(t, adapters, "Team-SQL"); got != "" && got != v2.CID {
		t.Errorf("the squatter's spelling is linked to %s", got)
	}
}

func mustMeta(t *testing.T, n *Node, c string) store.Meta {
	t.Helper()
	m, err := n.store.Get(cid.MustParse(c))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestResolveOrder: when two trusted publishers use a name, it resolves to
// the line of the one trust.publishers lists first, unless the other's
// line holds the name in the adapters dir; an untrusted one's never, even
// published last.
func TestResolveOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("four libp2p nodes")
	}
	first := startNode(t, nil, nil)
	second := startNode(t, addr(first), nil)
	stranger := startNode(t, addr(first), nil)
	adapters := t.TempDir()
	n := startNode(t, addr(first), map[string]any{
		"inference.adapters_dir": adapters,
		"trust.publishers":       []string{first.Identity().ID, second.Identity().ID},
	})
	waitMesh(t, first, second, stranger, n)
	testutil.Eventually(t, 10*time.Second, "a gossip mesh", func() bool { return len(first.gossip.TopicPeers()) >= 3 })
	s1 := publishAs(t, second, retrained(t, 60), "team-sql")
	f1 := publishAs(t, first, retrained(t, 61), "team-sql")
	f2 := publishAs(t, first, retrained(t, 62), "team-sql")
	x := publishAs(t, stranger, retrained(t, 63), "team-sql")
	for _, c := range []string{s1.CID, f2.CID, x.CID} {
		testutil.Eventually(t, 30*time.Second, "the versions known", func() bool { return known(n, c) })
	}
	resolved := func() string {
		info, err := n.Name("team-sql")
		if err != nil || info.Resolved == nil {
			t.Fatalf("name: %+v %v", info, err)
		}
		return info.Resolved.CID
	}
	if got := resolved(); got != f2.CID {
		t.Errorf("resolved to %s, want the first listed publisher's latest %s (not %s)", got, f2.CID, f1.CID)
	}
	// The second publisher's line takes the name here (the user fetched
	// it): from then on the name resolves to that line.
	waitFetched(t, n, s1.CID)
	testutil.Eventually(t, 10*time.Second, "the second publisher's version in service", func() bool { return linked(t, adapters, "team-sql") == s1.CID })
	if got := resolved(); got != s1.CID {
		t.Errorf("with the second publisher's line in service, resolved to %s, want %s", got, s1.CID)
	}
	if info, _ := n.Name(stranger.Identity().ID + "/team-sql"); info.Resolved == nil || info.Resolved.CID != x.CID || info.Resolved.Trusted {
		t.Errorf("the stranger's line named: %+v", info.Resolved)
	}
}
