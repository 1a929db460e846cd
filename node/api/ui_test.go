package api

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
)

// testStatus is a node with something in every section of the status page.
func testStatus() Status {
	started := time.Now().Add(-90 * time.Second)
	return Status{
		Node: Identity{ID: "12D3KooWNodeUnderTest", Addrs: []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWNodeUnderTest"},
			Reachability: "private", Reservations: []Reservation{{Relay: "12D3KooWRelayGamma"}}},
		Peers: []Peer{{ID: "12D3KooWPeerAlpha", Addrs: []string{"/ip4/10.0.0.2/tcp/4001"}, LatencyMS: 12.5, Conns: []Conn{
			{Addr: "/ip4/10.0.0.2/tcp/4001", Kind: "direct"},
			{Addr: "/ip4/192.0.0.130/tcp/4001/p2p/12D3KooWRelayGamma/p2p-circuit", Kind: "relayed", Relay: "12D3KooWRelayGamma", LimitBytes: 1 << 30, LimitSeconds: 600},
			{Addr: "/ip4/192.0.0.132/udp/4001/quic-v1", Kind: "hole-punched"}}}},
		Experts: []Expert{
			{CID: "bafkreilocalexpert", Name: "math-lora <b>bold</b>", PeftType: "LORA", BaseModel: "meta-llama/Llama-3.1-8B",
				Size: 3 << 20, Local: true, Pinned: true},
			{CID: "bafkreiremoteexpert", Name: "code-ia3", PeftType: "IA3", BaseModel: "Qwen/Qwen2.5-7B",
				Size: 100 << 20, Providers: []string{"12D3KooWProviderBeta"}},
		},
		Transfers: []Transfer{{CID: "bafkreiremoteexpert", State: StateRunning, Bytes: 42 << 20, Total: 100 << 20, Started: started}},
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

// TestStatusPage loads the status page in headless Chromium against a
// server with a token and checks what it rendered: the first page of a
// swarm of experts with the full counts. With EXPERTD_UI_SCREENSHOT=file.png
// it also takes a screenshot.
func TestStatusPage(t *testing.T) {
	bin := chromium(t)
	st := testStatus()
	for i := range 20 {
		st.Experts[1].Providers = append(st.Experts[1].Providers, fmt.Sprintf("12D3KooWProvider%02d", i))
	}
	for i := range 150 { // one page holds the local expert, code-ia3 and 98 of these
		st.Experts = append(st.Experts, Expert{CID: fmt.Sprintf("bafkreiswarm%03d", i), Name: fmt.Sprintf("swarm-%03d", i),
			PeftType: "LORA", Size: 1 << 20, Providers: []string{"12D3KooWProviderGamma"}})
	}
	b := &fakeBackend{status: st}
	url := serve(t, NewServer(b, "s3cret", nil)) + "/?token=s3cret"

	dom := runChromium(t, bin, url, "--dump-dom")
	if _, msg, shown := strings.Cut(dom, `<p id="error" class="error">`); shown {
		msg, _, _ = strings.Cut(msg, "</p>")
		t.Errorf("the page shows an error: %s", msg)
	}
	for _, want := range []string{"12D3KooWNodeUnderTest", "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWNodeUnderTest", "updated "} {
		if !strings.Contains(dom, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	checkRow := func(body, key string, wants ...string) {
		t.Helper()
		r := row(dom, body, key)
		if r == "" {
			t.Errorf("%s: no row holds %q", body, key)
			return
		}
		for _, w := range wants {
			if !strings.Contains(r, w) {
				t.Errorf("%s: row lacks %q: <tr%s</tr>", body, w, r)
			}
		}
	}
	checkRow("peers", "12D3KooWPeerAlpha", "12.5 ms", "direct", "/ip4/10.0.0.2/tcp/4001",
		"relayed (limit 1.0 GiB, 600 s)", "/p2p/12D3KooWRelayGamma/p2p-circuit", "hole-punched", "/ip4/192.0.0.132/udp/4001/quic-v1")
	for _, want := range []string{`<dd id="node-reach">private</dd>`, "12D3KooWRelayGamma</code></li>"} {
		if !strings.Contains(dom, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Names are text, never markup.
	checkRow("local", "bafkreilocalexpert", "math-lora &lt;b&gt;bold&lt;/b&gt;", "LORA", "3.0 MiB", "pinned")
	checkRow("remote", "bafkreiremoteexpert", "code-ia3", "IA3", "Qwen/Qwen2.5-7B", "12D3KooWProviderBeta", "+5 more")
	checkRow("remote", "bafkreiswarm097", "swarm-097")
	if row(dom, "remote", "bafkreiswarm098") != "" {
		t.Error("the page shows more than the first page of experts")
	}
	for _, want := range []string{`id="local-count" class="count">(1)`, `id="remote-count" class="count">(99 of 151)`,
		`<p id="experts-more" class="muted">`} {
		if !strings.Contains(dom, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	checkRow("transfers", "bafkreiremoteexpert", "running", "42% · 42.0 MiB of 100.0 MiB", "<progress")
	if strings.Contains(dom, "<b>bold</b>") {
		t.Error("an expert name was rendered as HTML")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	if shot := os.Getenv("EXPERTD_UI_SCREENSHOT"); shot != "" {
		runChromium(t, bin, url, "--screenshot="+shot, "--window-size=1200,900")
		t.Logf("screenshot in %s", shot)
	}
}
