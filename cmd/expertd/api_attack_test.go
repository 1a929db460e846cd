package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
)

var (
	floodN    = flag.Int("api-flood", 1000, "connections per kind in TestAPIFloodsOnDaemon")
	floodWait = flag.Bool("api-flood-wait", false, "TestAPIFloodsOnDaemon also waits (~1 min) for the default timeouts to cut what the cap let in")
)

// oneDaemon starts a daemon called name (skipped with -short) and returns
// the binary, the test's root dir and the daemon.
func oneDaemon(t *testing.T, name string) (bin, root string, d *daemon) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and starts a daemon")
	}
	root = t.TempDir()
	bin = buildBinary(t)
	return bin, root, startDaemon(t, bin, root, name, "")
}

// request sends method path with body and the headers h (Host included) to
// the daemon on a fresh connection, as a browser or curl would, and returns
// the status.
func request(t *testing.T, apiAddr, method, path, body string, h map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+apiAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := (&http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAPIAttacksOnDaemon sends a daemon process what a hostile web page can
// make a browser send: cross-site "simple" requests (text/plain, a form),
// DNS-rebinding requests (a foreign Host), an <img> GET. None is served and
// nothing changes: no expert stored, no directory written, no fetch
// started. The CLI and curl with the documented header keep working.
func TestAPIAttacksOnDaemon(t *testing.T) {
	bin, root, d := oneDaemon(t, "victim")
	_, port, _ := net.SplitHostPort(d.API)
	fixture, _ := filepath.Abs("../../compress/testdata/peft/python-lora-r16")
	foreign := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain;charset=UTF-8"}
	rebind := map[string]string{"Host": "evil.example:" + port, "Origin": "http://evil.example:" + port,
		"Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
	expect := func(what string, got, want int) {
		t.Helper()
		if got != want {
			t.Errorf("%s: HTTP %d, want %d", what, got, want)
		}
	}
	ctx := context.Background()
	stored := func() []api.Expert {
		es, err := d.Client().Experts(ctx, api.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}

	pub := fmt.Sprintf(`{"path":%q,"name":"stolen"}`, fixture)
	expect("cross-site text/plain publish", request(t, d.API, "POST", "/v1/publish", pub, foreign), 403)
	expect("DNS-rebinding publish", request(t, d.API, "POST", "/v1/publish", pub, rebind), 403)
	expect("publish with no content type", request(t, d.API, "POST", "/v1/publish", pub, nil), 415)
	if es := stored(); len(es) != 0 {
		t.Fatalf("the attacks stored %v", es)
	}

	// The CLI publishes; then a page tries to write it where it likes.
	cid := runBin(t, bin, root, "publish", fixture, "--name", "python", "--api", d.API)
	victim := filepath.Join(root, "home", ".ssh")
	mat := fmt.Sprintf(`{"dir":%q}`, victim)
	expect("cross-site materialize", request(t, d.API, "POST", "/v1/experts/"+cid+"/materialize", mat, foreign), 403)
	expect("DNS-rebinding materialize", request(t, d.API, "POST", "/v1/experts/"+cid+"/materialize", mat, rebind), 403)
	expect("materialize as a form", request(t, d.API, "POST", "/v1/experts/"+cid+"/materialize", mat,
		map[string]string{"Origin": "null", "Content-Type": "application/x-www-form-urlencoded"}), 403)
	if _, err := os.Stat(victim); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s was written (stat: %v)", victim, err)
	}
	other := "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
	expect("cross-site fetch", request(t, d.API, "POST", "/v1/fetch/"+other, "", foreign), 403)
	expect("cross-site unpin", request(t, d.API, "POST", "/v1/experts/"+cid+"/unpin", "", foreign), 403)
	expect("cross-site delete", request(t, d.API, "DELETE", "/v1/experts/"+cid, "", foreign), 403)
	expect("<img src=/v1/resolve/python>", request(t, d.API, "GET", "/v1/resolve/python", "",
		map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}), 403)
	// Without a browser's headers, GET is the read-only lookup of the
	// name (docs/names.md): it answers, and neither fetches nor writes.
	expect("GET /v1/resolve/python", request(t, d.API, "GET", "/v1/resolve/python", "", nil), 200)
	expect("DNS-rebinding status read", request(t, d.API, "GET", "/v1/status", "", map[string]string{"Host": "evil.example:" + port}), 403)
	if _, err := d.Client().Transfer(ctx, other); err == nil {
		t.Error("the cross-site fetch started a transfer")
	}
	if es := stored(); len(es) != 1 || es[0].CID != cid || !es[0].Pinned {
		t.Errorf("after the attacks the store holds %+v, want %s alone, pinned", es, cid)
	}

	// curl with the documented header, and the CLI, still work.
	expect("curl -X POST -H 'Content-Type: application/json' .../unpin",
		request(t, d.API, "POST", "/v1/experts/"+cid+"/unpin", "", map[string]string{"Content-Type": "application/json"}), 200)
	expect("the status page's own origin", request(t, d.API, "POST", "/v1/experts/"+cid+"/pin", "",
		map[string]string{"Origin": "http://" + d.API, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}), 200)
	out := filepath.Join(root, "out")
	runBin(t, bin, root, "fetch", cid, "-o", out, "--api", d.API)
	if _, err := os.Stat(filepath.Join(out, "adapter_model.safetensors")); err != nil {
		t.Errorf("expertd fetch -o: %v", err)
	}
	if ls := runBin(t, bin, root, "ls", "--api", d.API); !strings.Contains(ls, cid) || !strings.Contains(ls, "pinned") {
		t.Errorf("expertd ls:\n%s", ls)
	}
}

// scrape reads the daemon's go_goroutines and process_open_fds.
func scrape(t *testing.T, apiAddr string) (goroutines, fds int) {
	t.Helper()
	resp, err := http.Get("http://" + apiAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		f, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			goroutines = int(f)
		case "process_open_fds":
			fds = int(f)
		}
	}
	return goroutines, fds
}

// holdKinds are the connections an attacker holds open: silent, idle
// between keep-alive requests, sending headers or a body slowly.
var holdKinds = []struct {
	name string
	send func(c net.Conn, host string) error
}{
	{"silent", func(net.Conn, string) error { return nil }},
	{"idle keep-alive", func(c net.Conn, host string) error {
		fmt.Fprintf(c, "GET /v1/health HTTP/1.1\r\nHost: %s\r\n\r\n", host)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return err
	}},
	{"slow headers", func(c net.Conn, host string) error {
		_, err := fmt.Fprintf(c, "GET /v1/health HTTP/1.1\r\nHost: %s\r\nX-Slow: ", host)
		return err
	}},
	{"slow body", func(c net.Conn, host string) error {
		_, err := fmt.Fprintf(c, "POST /v1/publish HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{", host)
		return err
	}},
}

// stillOpen reports whether the daemon has not closed c.
func stillOpen(c net.Conn, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestAPIFloodsOnDaemon holds -api-flood connections of each kind open on a
// daemon process's API and measures what the daemon holds (its own
// go_goroutines and process_open_fds) and how long an honest request takes
// meanwhile. With -api-flood-wait it also waits for the daemon's default
// timeouts to cut the connections the cap admitted.
func TestAPIFloodsOnDaemon(t *testing.T) {
	_, _, d := oneDaemon(t, "flooded")
	honest := d.Client()
	g0, fd0 := scrape(t, d.API)
	for _, k := range holdKinds {
		t.Run(k.name, func(t *testing.T) {
			conns := make([]net.Conn, 0, *floodN)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			start := time.Now()
			for i := range *floodN {
				c, err := net.Dial("tcp", d.API)
				if err == nil {
					err = k.send(c, d.API)
				}
				if err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				conns = append(conns, c)
			}
			opened := time.Since(start)
			t0 := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := honest.Identity(ctx); err != nil {
				t.Fatalf("honest request during the flood: %v", err)
			}
			took := time.Since(t0)
			g, fd := scrape(t, d.API)
			// A connection the kernel took but the daemon has not accepted
			// yet looks open from here until the daemon reaches it and
			// closes it (over the cap): count again for up to a second.
			open := 0
			for wait := time.Now().Add(time.Second); ; {
				open = 0
				for _, c := range conns {
					if stillOpen(c, time.Millisecond) {
						open++
					}
				}
				if open <= api.DefaultLimits.MaxConns || time.Now().After(wait) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("%d %s connections opened in %v: daemon goroutines %d -> %d, open fds %d -> %d, still open %d; honest request took %v",
				len(conns), k.name, opened.Round(time.Millisecond), g0, g, fd0, fd, open, took.Round(time.Microsecond))
			maxConns := api.DefaultLimits.MaxConns
			if open > maxConns || fd-fd0 > maxConns+32 {
				t.Errorf("the daemon holds %d connections (%d fds more), over the cap of %d", open, fd-fd0, maxConns)
			}
			// Goroutines of connections closed to make room may still be
			// on their way out at the scrape: the held ones settle within.
			testutil.Eventually(t, 10*time.Second, "the daemon's goroutines within 2 per held connection", func() bool {
				g, _ := scrape(t, d.API)
				return g-g0 <= 2*maxConns+64
			})
			if *floodWait {
				lim := api.DefaultLimits
				bound := max(lim.IdleTimeout, lim.ReadTimeout, lim.ReadHeaderTimeout) + 10*time.Second
				deadline := time.Now().Add(bound)
				for _, c := range conns {
					if stillOpen(c, time.Until(deadline)) {
						t.Fatalf("a %s connection is still open %v after the flood", k.name, bound)
					}
				}
				t.Logf("all cut %v after the flood began", time.Since(start).Round(time.Millisecond))
			}
			for _, c := range conns {
				c.Close()
			}
			testutil.Eventually(t, 20*time.Second, "the daemon to drop the flood's connections", func() bool {
				_, fd := scrape(t, d.API)
				return fd <= fd0+8
			})
		})
	}
}

// TestAPIPagingOnDaemon walks a daemon's experts one per page: each once, in
// order (local first, then name), with the total on every page.
func TestAPIPagingOnDaemon(t *testing.T) {
	bin, root, d := oneDaemon(t, "paged")
	for _, f := range []string{"python-lora-r16", "c-ia3", "python-lora-r16-f16"} {
		dir, _ := filepath.Abs("../../compress/testdata/peft/" + f)
		runBin(t, bin, root, "publish", dir, "--name", f, "--api", d.API)
	}
	want := []string{"c-ia3", "python-lora-r16", "python-lora-r16-f16"}
	var got []string
	cursor := ""
	for range 10 {
		p, err := d.Client().ExpertPage(context.Background(), api.Filter{Remote: true}, 1, cursor)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != 3 || len(p.Experts) != 1 {
			t.Fatalf("page after %q: %d experts of %d", cursor, len(p.Experts), p.Total)
		}
		got = append(got, p.Experts[0].Name)
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("paged %v, want %v", got, want)
	}
	st, err := d.Client().Status(context.Background())
	if err != nil || st.Counts.LocalExperts != 3 || len(st.Experts) != 3 || st.ExpertsNext != "" {
		t.Fatalf("status: %d experts, counts %+v, next %q, %v", len(st.Experts), st.Counts, st.ExpertsNext, err)
	}
}
