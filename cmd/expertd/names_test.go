package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
	"github.com/expertd/expertd/node/handoff/fakevllm"
	"github.com/expertd/expertd/node/p2p"
)

// gpt2Tiny is the base model the LoRA fixture adapts, as the fake vLLM
// serves it: six blocks of a GPT of hidden size 384.
var gpt2Tiny = fakevllm.Base{Model: "gpt2-tiny", Modules: map[string]fakevllm.Module{
	"qkv": {In: 384, Out: 1152}, "proj": {In: 384, Out: 384}, "fc1": {In: 384, Out: 1536}, "fc2": {In: 1536, Out: 384},
}}

// retrainedDir writes, under dir, the fixture LoRA for gpt2-tiny with
// lora_alpha alpha: each alpha is another expert (other bytes, another
// CID), as a retrained version is.
func retrainedDir(t *testing.T, dir string, alpha int) string {
	t.Helper()
	out := variant(t, dir, fmt.Sprintf("team-sql-%d", alpha), "gpt2-tiny", 16)
	cfg := filepath.Join(out, "adapter_config.json")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, bytes.Replace(b, []byte(`"lora_alpha": 32,`), fmt.Appendf(nil, `"lora_alpha": %d,`, alpha), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// retrainedContainer is retrainedDir compressed into a container, so that
// publishing it only stores, signs and announces.
func retrainedContainer(t *testing.T, dir string, alpha int) string {
	t.Helper()
	src, err := compress.Load(retrainedDir(t, dir, alpha), "")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, fmt.Sprintf("team-sql-%d.cpeft", alpha))
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, err := compress.Encode(f, src); err != nil {
		t.Fatal(err)
	}
	return file
}

// chainNode is a daemon of a test swarm whose identity and config are
// made before it starts.
type chainNode struct {
	name, root string
	id         peer.ID
}

// newChainNode makes name's identity under tmp/name.
func newChainNode(t *testing.T, tmp, name string) chainNode {
	t.Helper()
	n := chainNode{name: name, root: filepath.Join(tmp, name)}
	key, err := p2p.LoadIdentity(filepath.Join(n.root, name, "identity.key"))
	if err != nil {
		t.Fatal(err)
	}
	if n.id, err = peer.IDFromPrivateKey(key); err != nil {
		t.Fatal(err)
	}
	return n
}

// start writes cfg as the node's config file and starts it, bootstrapping
// to boot if set.
func (n chainNode) start(t *testing.T, bin, cfg, boot string) *daemon {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(n.root, "expertd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.root, "expertd", "expertd.yaml"), []byte("version: 1\n"+cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return startDaemon(t, bin, n.root, n.name, boot)
}

// completions asks vLLM at url for completions from model in a loop on
// workers goroutines until stop is called, counting the answers by HTTP
// status; stop returns the counts.
func completions(t *testing.T, url, model string, workers int) (stop func() map[int]int) {
	var (
		done sync.WaitGroup
		quit atomic.Bool
		mu   sync.Mutex
		by   = map[int]int{}
	)
	body, _ := json.Marshal(map[string]any{"model": model, "prompt": "SELECT", "max_tokens": 1})
	c := &http.Client{Timeout: 10 * time.Second}
	for range workers {
		done.Go(func() {
			for !quit.Load() {
				code := -1 // no answer
				if resp, err := c.Post(url+"/v1/completions", "application/json", bytes.NewReader(body)); err == nil {
					code = resp.StatusCode
					resp.Body.Close()
				}
				mu.Lock()
				by[code]++
				mu.Unlock()
			}
		})
	}
	return func() map[int]int {
		quit.Store(true)
		done.Wait()
		return by
	}
}

// transferOf returns the fetch of c a daemon's status lists.
func transferOf(t *testing.T, d *daemon, c string) (api.Transfer, bool) {
	t.Helper()
	st, err := d.Client().Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range st.Transfers {
		if tr.CID == c && tr.State == api.StateDone {
			return tr, true
		}
	}
	return api.Transfer{}, false
}

// TestFollowTwoHops measures how fast a followed name moves, with daemon
// processes: A publishes new versions of team-sql; C, two hops away (A - B
// - C, the only connections each node's p2p.allow_peers permits), follows
// the name beside a fake vLLM (node/handoff/fakevllm: vLLM's v0.22
// cycle, upstream 9aaf83ef5, with load_inplace); B, between them, follows
// it too (C can fetch from B only). For each version it reports the time from the
// publish on A to the new version loaded in vLLM on C, and the fetches in
// it; while clients keep asking vLLM for team-sql, no request may be
// answered 404 (adapter not found). The only timing check is a generous
// failure detector.
func TestFollowTwoHops(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three daemons")
	}
	bin, tmp := buildBinary(t), t.TempDir()
	fake := fakevllm.New(fakevllm.Options{Base: gpt2Tiny, RuntimeUpdating: true})
	vllm := httptest.NewServer(fake)
	t.Cleanup(vllm.Close)

	a, b, c := newChainNode(t, tmp, "A"), newChainNode(t, tmp, "B"), newChainNode(t, tmp, "C")
	adapters := filepath.Join(tmp, "adapters")
	follow := fmt.Sprintf("inference:\n  want: [\"name=team-sql\"]\ntrust:\n  publishers: [%s]\n", a.id)
	da := a.start(t, bin, fmt.Sprintf("p2p:\n  allow_peers: [%s]\n", b.id), "")
	db := b.start(t, bin, fmt.Sprintf("p2p:\n  allow_peers: [%s, %s]\n%s", a.id, c.id, follow), da.Addr)
	dc := c.start(t, bin, fmt.Sprintf(`p2p:
  allow_peers: [%s]
inference:
  adapters_dir: %s
  served_model: gpt2-tiny
  vllm_url: %s
  want: ["name=team-sql"]
trust:
  publishers: [%s]
`, b.id, adapters, vllm.URL, a.id), db.Addr)

	src := filepath.Join(tmp, "src")
	loaded := func(cid string) func() bool {
		return func() bool {
			l, ok := fake.Loaded("team-sql")
			return ok && strings.Contains(l.Path, cid)
		}
	}
	// Version 1: the swarm's meshes form, and vLLM gets the name.
	v1 := publish(t, da, retrainedContainer(t, src, 32), "team-sql")
	testutil.Eventually(t, 60*time.Second, "version 1 loaded in vLLM on C", loaded(v1))
	if ps, err := dc.Client().Peers(context.Background()); err != nil || slices.ContainsFunc(ps, func(p api.Peer) bool { return p.ID == a.id.String() }) {
		t.Fatalf("C is connected to A (%v): not two hops", err)
	}

	stop := completions(t, vllm.URL, "team-sql", 2)
	const versions = 4
	var totals, overheads []time.Duration
	for v := 2; v <= versions+1; v++ {
		file := retrainedContainer(t, src, 40+v)
		start := time.Now()
		e, err := da.Client().Publish(context.Background(), api.PublishRequest{Path: file, Name: "team-sql"})
		if err != nil {
			t.Fatal(err)
		}
		published := time.Since(start)
		if e.Version != uint64(v) {
			t.Fatalf("published version %d, want %d", e.Version, v)
		}
		deadline := start.Add(60 * time.Second) // a failure detector, not a timing check
		for !loaded(e.CID)() {
			if time.Now().After(deadline) {
				t.Fatalf("version %d not loaded in vLLM on C after 60 s", v)
			}
			time.Sleep(2 * time.Millisecond)
		}
		total := time.Since(start)
		fb, _ := transferOf(t, db, e.CID)
		fc, _ := transferOf(t, dc, e.CID)
		fetches := fb.Finished.Sub(fb.Started) + fc.Finished.Sub(fc.Started)
		totals, overheads = append(totals, total), append(overheads, total-fetches)
		t.Logf("version %d: publish call %v; publish -> loaded in vLLM on C %v; fetch on B %v, on C %v; the rest %v (budget 1s)",
			v, published.Round(time.Millisecond), total.Round(time.Millisecond), fb.Finished.Sub(fb.Started).Round(time.Millisecond),
			fc.Finished.Sub(fc.Started).Round(time.Millisecond), (total - fetches).Round(time.Millisecond))
	}
	counts := stop()
	t.Logf("publish -> loaded, %d versions: median %v, max %v; without the fetches: median %v, max %v",
		versions, median(totals), slices.Max(totals), median(overheads), slices.Max(overheads))
	t.Logf("completions through the swaps: %v (by HTTP status)", counts)
	if counts[http.StatusNotFound] != 0 || counts[http.StatusOK] == 0 {
		t.Errorf("vLLM answered %d requests for team-sql 404 (adapter not found) through the swaps", counts[http.StatusNotFound])
	}
	for code, k := range counts {
		if code != http.StatusOK {
			t.Errorf("%d requests answered %d", k, code)
		}
	}
	if calls := fake.Calls(); !slices.Contains(calls, "load team-sql inplace") || slices.Contains(calls, "unload team-sql") {
		t.Errorf("vLLM calls %v: want loads in place, no unload", calls)
	}
	st, err := dc.Client().Status(context.Background())
	if err != nil || len(st.Adapters) != 1 || st.Adapters[0].ExpertVersion != versions+1 || st.Adapters[0].Publisher != a.id.String() {
		t.Errorf("C's status adapters %+v (%v)", st.Adapters, err)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestNamesCLI: publish a name twice, then ls, ls --versions and fetch by
// name and by publisher/name on a node that joined later (it learns the
// latest version from the publisher's catalog), and see an untrusted
// publisher's expert of the same name listed as such.
func TestNamesCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three daemons")
	}
	bin, tmp := buildBinary(t), t.TempDir()
	src := filepath.Join(tmp, "src")
	p := startPublisher(t, bin, filepath.Join(tmp, "p"))
	pid := daemontest.WaitIdentity(t, p.Client()).ID
	cli := func(d *daemon, args ...string) string {
		t.Helper()
		return runBin(t, bin, tmp, append(args, "--api", d.API)...)
	}
	v1 := cli(p, "publish", retrainedDir(t, src, 32), "--name", "team-sql")
	out, err := runBinErr(bin, tmp, "publish", retrainedDir(t, src, 33), "--name", "team-sql", "--api", p.API)
	if err != nil {
		t.Fatal(err)
	}
	v2 := strings.TrimSpace(out)
	if again := cli(p, "publish", retrainedDir(t, src, 32), "--name", "team-sql"); again != v1 {
		t.Errorf("the same bytes again: %s, want %s", again, v1)
	}
	ls := cli(p, "ls")
	if !strings.Contains(ls, "VERSION") || !lineWith(ls, v2, "team-sql", "2", pid) || !lineWith(ls, v1, "team-sql", "1", pid) {
		t.Errorf("ls:\n%s", ls)
	}

	// A node joining now learns version 2, and fetches it by name.
	s := startServer(t, bin, filepath.Join(tmp, "s"), p, filepath.Join(tmp, "adapters"), "")
	testutil.Eventually(t, 30*time.Second, "the late joiner learns team-sql", func() bool {
		info, err := s.Client().Name(context.Background(), "team-sql")
		return err == nil && info.Resolved != nil
	})
	if got := cli(s, "fetch", "team-sql"); got != v2 {
		t.Errorf("fetch team-sql: %s, want version 2 %s", got, v2)
	}
	if got := cli(s, "fetch", pid+"/team-sql"); got != v2 {
		t.Errorf("fetch %s/team-sql: %s, want %s", pid, got, v2)
	}
	vs := cli(s, "ls", "--versions", "TEAM-SQL")
	if !lineWith(vs, "2", v2, "team-sql", pid, "local", "<- TEAM-SQL") || strings.Contains(vs, v1) {
		t.Errorf("ls --versions on the late joiner (version 1 superseded before it came):\n%s", vs)
	}
	vs = cli(p, "ls", "--versions", "team-sql")
	if !lineWith(vs, "1", v1, "local, pinned") || !lineWith(vs, "2", v2, "local, pinned", "<- team-sql") {
		t.Errorf("ls --versions on the publisher:\n%s", vs)
	}
	// Version 1 is no longer gossiped, but stays fetchable by its CID
	// (the DHT knows its providers).
	if got := cli(s, "fetch", v1); got != v1 {
		t.Errorf("fetch %s (version 1): %s", v1, got)
	}
	if target, _ := os.Readlink(filepath.Join(tmp, "adapters", "team-sql")); !strings.Contains(target, v2) {
		t.Errorf("after fetching version 1, team-sql links to %q, want version 2", target)
	}

	// An untrusted publisher's team-sql: listed as untrusted, never the
	// name's version.
	if err := os.MkdirAll(filepath.Join(tmp, "q"), 0o755); err != nil {
		t.Fatal(err)
	}
	q := startDaemon(t, bin, filepath.Join(tmp, "q"), "squatter", p.Addr)
	qid := daemontest.WaitIdentity(t, q.Client()).ID
	sq := cli(q, "publish", retrainedDir(t, src, 40), "--name", "Team-SQL")
	testutil.Eventually(t, 30*time.Second, "the squatter's expert known", func() bool {
		out, err := runBinErr(bin, tmp, "ls", "--remote", "--api", s.API)
		return err == nil && strings.Contains(out, sq)
	})
	if ls := cli(s, "ls", "--remote"); !lineWith(ls, sq, "Team-SQL", "1", qid+" (untrusted)", "remote") {
		t.Errorf("ls --remote:\n%s", ls)
	}
	if got := cli(s, "fetch", "team-sql"); got != v2 {
		t.Errorf("fetch team-sql with a squatter about: %s, want %s", got, v2)
	}
	if got := cli(s, "fetch", qid+"/team-sql"); got != sq {
		t.Errorf("fetch %s/team-sql: %s, want the squatter's %s", qid, got, sq)
	}
	// Even fetched by the user (which vouches for it), it does not take
	// the name the trusted publisher's version holds.
	adapters := filepath.Join(tmp, "adapters")
	testutil.Eventually(t, 30*time.Second, "the hand-off of the squatter's expert refused", func() bool {
		log, _ := os.ReadFile(filepath.Join(tmp, "s", s.Name+".log"))
		return bytes.Contains(log, []byte("cid="+sq)) && bytes.Contains(log, []byte("held by version 2 of publisher "+pid))
	})
	if target, err := os.Readlink(filepath.Join(adapters, "team-sql")); err != nil || !strings.Contains(target, v2) {
		t.Errorf("team-sql links to %q (%v), want version 2", target, err)
	}
	if _, err := os.Lstat(filepath.Join(adapters, "Team-SQL")); err == nil {
		t.Error("the squatter's Team-SQL was written beside team-sql")
	}
}

// lineWith reports whether a line of out holds every one of parts, in
// order.
func lineWith(out string, parts ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := line, true
		for _, p := range parts {
			i := strings.Index(rest, p)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}
