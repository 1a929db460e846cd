package api

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/expert"
)

// fakeCID and fakePeer make IDs as long as real ones (a CIDv1 of a raw
// sha2-256 leaf, an Ed25519 peer ID), for the page to lay out.
func fakeCID(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return "bafkrei" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
}

func fakePeer(seed string) string {
	const b58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
	sum := sha256.Sum256([]byte(seed))
	id := []byte("12D3KooW")
	for i := range 44 {
		id = append(id, b58[int(sum[i%32]+byte(i/32))%58])
	}
	return string(id)
}

var (
	nodeID   = fakePeer("node")
	alpha    = fakePeer("alpha")
	relay    = fakePeer("relay")
	beta     = fakePeer("beta")
	localCID = fakeCID("local")
	codeCID  = fakeCID("code")
	lostCID  = fakeCID("lost")
	newCID   = fakeCID("new")
	doneCID  = fakeCID("done")
	sqlCID   = fakeCID("team-sql")
)

// testStatus is a node with something in every section of the status page:
// a transfer in each state, a local expert another peer serves too.
func testStatus() Status {
	started := time.Now().Add(-90 * time.Second)
	return Status{
		Node: Identity{ID: nodeID, Addrs: []string{"/ip4/127.0.0.1/tcp/4001/p2p/" + nodeID},
			Reachability: "private", Reservations: []Reservation{{Relay: relay}}},
		Peers: []Peer{{ID: alpha, Addrs: []string{"/ip4/10.0.0.2/tcp/4001"}, LatencyMS: 12.5, Conns: []Conn{
			{Addr: "/ip4/10.0.0.2/tcp/4001", Kind: "direct"},
			{Addr: "/ip4/192.0.0.130/tcp/4001/p2p/" + relay + "/p2p-circuit", Kind: "relayed", Relay: relay, LimitBytes: 1 << 30, LimitSeconds: 600},
			{Addr: "/ip4/192.0.0.132/udp/4001/quic-v1", Kind: "hole-punched"}}}},
		Experts: []Expert{
			{
				CID:      localCID,
				Metadata: expert.Metadata{Name: "math-lora <b>bold</b>", PeftType: "LORA", BaseModel: "meta-llama/Llama-3.1-8B", Size: 3 << 20},
				Local:    true, Pinned: true, Providers: []string{alpha},
			},
			{
				CID:       codeCID,
				Metadata:  expert.Metadata{Name: "code-ia3", PeftType: "IA3", BaseModel: "Qwen/Qwen2.5-7B", Size: 100 << 20},
				Providers: []string{beta},
			},
		},
		Transfers: []Transfer{
			{CID: codeCID, Name: "code-ia3", State: StateRunning, Bytes: 42 << 20, Total: 100 << 20, Started: started},
			{CID: newCID, State: StateRunning, Started: started.Add(time.Second)},
			{CID: lostCID, Name: "lost-lora", State: StateFailed, Bytes: 12 << 20, Total: 100 << 20, Started: started,
				Finished: started.Add(40 * time.Second), Error: "fetch " + lostCID + ": no provider of " + lostCID + " known (gossip or DHT)"},
			{CID: doneCID, Name: "done-lora", State: StateDone, Bytes: 3 << 20, Total: 3 << 20, Started: started,
				Finished: started.Add(2500 * time.Millisecond)},
		},
	}
}

// chromium finds a headless browser; without one the test is skipped,
// unless CI is set: CI installs Debian's chromium (see .ci/run).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testutil.Missing(t, "neither chromium nor chromium-browser is on PATH: install Debian's chromium package to test the status page")
	return ""
}

// runChromium runs headless Chromium on url with args and returns its stdout.
func runChromium(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append([]string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=5000"}, args...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, stderr.String())
	}
	return string(out)
}

// row returns the row holding key in the table body with the id body, or "".
func row(dom, body, key string) string {
	_, rows, _ := strings.Cut(dom, `<tbody id="`+body+`">`)
	rows, _, _ = strings.Cut(rows, "</tbody>")
	for _, r := range strings.Split(rows, "<tr") {
		r, _, _ = strings.Cut(r, "</tr>")
		if strings.Contains(r, key) {
			return r
		}
	}
	return ""
}

// visible is the text of DOM markup as a reader sees it: no tags, no
// attributes (a title shows only on hover).
func visible(dom string) string { return regexp.MustCompile(`<[^>]*>`).ReplaceAllString(dom, " ") }

// short is the page's shortening of an ID: bafkreigh2a…4s52zy.
func short(s string) string { return s[:10] + "…" + s[len(s)-6:] }

// TestStatusPage loads the status page in headless Chromium against a
// server with a token and checks what it rendered: the first page of a
// swarm of experts with the full counts, transfers in every state, IDs
// shortened (in full on hover, with a copy button) so a table keeps one
// line a row. With EXPERTD_UI_SCREENSHOT=prefix it also takes screenshots
// 1280 and 800 pixels wide (prefix-1280.png, prefix-800.png).
func TestStatusPage(t *testing.T) {
	bin := chromium(t)
	st := testStatus()
	// A version of a line, in service under its name.
	st.Experts = append(st.Experts, Expert{
		CID:       sqlCID,
		Metadata:  expert.Metadata{Name: "team-sql", PeftType: "LORA", BaseModel: "meta-llama/Llama-3.1-8B", Size: 3 << 20},
		Publisher: alpha, Version: 3, Local: true, Signed: true, Trusted: true,
	})
	st.Adapters = []Adapter{{Name: "team-sql", CID: sqlCID, Publisher: alpha, ExpertVersion: 3, Loaded: true}}
	for i := range 20 {
		st.Experts[1].Providers = append(st.Experts[1].Providers, fakePeer(fmt.Sprint("provider", i)))
	}
	for i := range 150 { // one page holds the two local experts, code-ia3 and 97 of these
		st.Experts = append(st.Experts, Expert{
			CID:       fakeCID(fmt.Sprint("swarm", i)),
			Metadata:  expert.Metadata{Name: fmt.Sprintf("swarm-%03d", i), PeftType: "LORA", BaseModel: "meta-llama/Llama-3.1-8B", Size: 1 << 20},
			Providers: []string{fakePeer("gamma")},
		})
	}
	b := &fakeBackend{status: st}
	url := serve(t, NewServer(b, "s3cret", nil)) + "/?token=s3cret"

	dom := runChromium(t, bin, url, "--dump-dom")
	if _, msg, shown := strings.Cut(dom, `<p id="error" class="error">`); shown {
		msg, _, _ = strings.Cut(msg, "</p>")
		t.Errorf("the page shows an error: %s", msg)
	}
	for _, want := range []string{nodeID, "/ip4/127.0.0.1/tcp/4001/p2p/" + nodeID, "updated "} {
		if !strings.Contains(dom, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	checkRow := func(body, key string, wants ...string) string {
		t.Helper()
		r := row(dom, body, key)
		if r == "" {
			t.Errorf("%s: no row holds %q", body, key)
			return ""
		}
		text := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(r, "")
		for _, w := range wants { // in the markup, or in the text
			if !strings.Contains(r, w) && !strings.Contains(text, w) {
				t.Errorf("%s: row lacks %q: <tr%s</tr>", body, w, r)
			}
		}
		return r
	}
	checkRow("peers", alpha, "12.5 ms", "direct", "/ip4/10.0.0.2/tcp/4001",
		"relayed (limit 1.0 GiB, 600 s)", "/p2p/"+short(relay)+"/p2p-circuit", "hole-punched", "/ip4/192.0.0.132/udp/4001/quic-v1")
	for _, want := range []string{`<dd id="node-reach">private</dd>`, `title="` + relay + `">` + short(relay) + "</code>"} {
		if !strings.Contains(dom, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Names are text, never markup; a local expert shows who else serves it.
	checkRow("local", localCID, "math-lora &lt;b&gt;bold&lt;/b&gt;", "LORA", "3.0 MiB", "pinned", short(alpha))
	checkRow("remote", codeCID, "code-ia3", "IA3", "Qwen/Qwen2.5-7B", short(beta), "+19 more")
	checkRow("remote", fakeCID("swarm96"), "swarm-096")
	// A version of a line: its version beside its name; the adapter of
	// the name says which version is in service.
	checkRow("local", sqlCID, "team-sql", "v3")
	checkRow("adapters", "team-sql", "v3 by", short(alpha), short(sqlCID), "loaded")
	if row(dom, "remote", fakeCID("swarm97")) != "" {
		t.Error("the page shows more than the first page of experts")
	}
	for _, want := range []string{`id="local-count" class="count">(2)`, `id="remote-count" class="count">(98 of 151)`,
		`<p id="experts-more" class="muted">`} {
		if !strings.Contains(dom, want) {
			t.Errorf("page lacks %s", want)
		}
	}

	// Transfers: the expert's name; a bar only while running (moving only
	// while the size is not known); a failure's error without the CID.
	checkRow("transfers", codeCID, "code-ia3", "running", `<progress value="44040192" max="104857600">`, "42% · 42.0 MiB of 100.0 MiB")
	checkRow("transfers", newCID, "name not known yet", "<progress></progress>", "looking for providers")
	lost := checkRow("transfers", lostCID, "lost-lora", "failed", "no provider of this expert known (gossip or DHT)", "stopped at 12% · 12.0 MiB of 100.0 MiB")
	done := checkRow("transfers", doneCID, "done-lora", "done", "3.0 MiB in 2.5 s")
	for _, r := range []string{lost, done} {
		if strings.Contains(r, "<progress") {
			t.Errorf("a finished transfer has a bar: <tr%s</tr>", r)
		}
	}
	// No table shows a whole CID or peer ID: it would wrap over lines.
	_, tables, _ := strings.Cut(dom, `<tbody id="transfers">`)
	for _, id := range []string{localCID, codeCID, lostCID, newCID, doneCID, alpha, relay, beta} {
		if strings.Contains(visible(tables), id) {
			t.Errorf("a table shows %s in full", id)
		}
		if !regexp.MustCompile(`title="[^"]*` + id).MatchString(tables) {
			t.Errorf("%s is not in full on hover", id)
		}
	}
	for _, id := range []string{localCID, codeCID, lostCID, newCID, doneCID, alpha} { // each expert's and peer's own
		if !strings.Contains(tables, `data-copy="`+id+`"`) {
			t.Errorf("no copy button for %s", id)
		}
	}
	if strings.Contains(dom, "<b>bold</b>") {
		t.Error("an expert name was rendered as HTML")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	if shot := os.Getenv("EXPERTD_UI_SCREENSHOT"); shot != "" {
		for _, w := range []int{1280, 800} {
			file := fmt.Sprintf("%s-%d.png", shot, w)
			runChromium(t, bin, url, "--screenshot="+file, fmt.Sprintf("--window-size=%d,1400", w))
			t.Logf("screenshot in %s", file)
		}
	}
}
