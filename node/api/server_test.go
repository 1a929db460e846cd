package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/expertd/expertd/node/expert"
)

// fakeBackend records calls and returns canned values.
type fakeBackend struct {
	experts  map[string]Expert
	pinned   map[string]bool
	status   Status
	resolved ResolveRequest // the last Resolve's
	// merging, if set, receives the context of every Merge, which then
	// waits for it to end (a merge that takes long).
	merging chan context.Context
}

func (f *fakeBackend) Identity() Identity {
	return Identity{ID: "12D3Koo", Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}
}
func (f *fakeBackend) Peers() []Peer { return []Peer{{ID: "p1"}} }
func (f *fakeBackend) Experts(fl Filter, p Page) ExpertPage {
	var out []Expert
	for _, e := range f.experts {
		if fl.Name == "" || e.Name == fl.Name {
			out = append(out, e)
		}
	}
	return p.Of(out)
}
func (f *fakeBackend) Expert(c string) (Expert, error) {
	e, ok := f.experts[c]
	if !ok {
		return Expert{}, fmt.Errorf("expert %s: %w", c, ErrNotFound)
	}
	return e, nil
}
func (f *fakeBackend) Publish(_ context.Context, r PublishRequest) (Expert, error) {
	if r.Path == "" {
		return Expert{}, fmt.Errorf("%w: path is required", ErrBadRequest)
	}
	e := Expert{CID: "bafkx", Metadata: expert.Metadata{Name: r.Name}, Local: true}
	f.experts[e.CID] = e
	return e, nil
}
func (f *fakeBackend) Merge(ctx context.Context, r MergeRequest) (Expert, error) {
	if f.merging != nil {
		f.merging <- ctx
		<-ctx.Done()
		return Expert{}, ctx.Err()
	}
	if len(r.Parents) < 2 {
		return Expert{}, fmt.Errorf("%w: merge needs 2 to 64 parents", ErrBadRequest)
	}
	return Expert{CID: "bafkm", Metadata: expert.Metadata{
		Name: r.Name,
	}, Local: true, Signed: r.Publish, Merge: &Merge{Method: "ta", Parents: r.Parents}}, nil
}
func (f *fakeBackend) StartFetch(c string) (Transfer, error) {
	return Transfer{CID: c, State: StateRunning}, nil
}
func (f *fakeBackend) Transfer(c string) (Transfer, error) {
	return Transfer{}, fmt.Errorf("%w: no fetch of %s", ErrNotFound, c)
}
func (f *fakeBackend) CancelFetch(_ context.Context, c string) (Transfer, error) {
	if c != "bafkq" {
		return Transfer{}, fmt.Errorf("%w: no fetch of %s", ErrNotFound, c)
	}
	return Transfer{CID: c, State: StateCanceled, Error: "canceled"}, nil
}
func (f *fakeBackend) Materialize(_ context.Context, c string, r MaterializeRequest) (Materialized, error) {
	return Materialized{CID: c, Dir: r.Dir}, nil
}
func (f *fakeBackend) Pin(c string, p bool) error {
	if _, ok := f.experts[c]; !ok {
		return ErrNotFound
	}
	f.pinned[c] = p
	return nil
}
func (f *fakeBackend) Remove(c string) error { return errors.New("disk on fire") }
func (f *fakeBackend) Resolve(_ context.Context, name string, r ResolveRequest) (Materialized, error) {
	f.resolved = r
	for _, e := range f.experts {
		if e.Name == name {
			return Materialized{CID: e.CID, Dir: "/adapters/" + name}, nil
		}
	}
	return Materialized{}, fmt.Errorf("%w: no expert %q", ErrNotFound, name)
}

func (f *fakeBackend) Name(name string) (NameInfo, error) {
	for _, e := range f.experts {
		if e.Name == name {
			v := NameVersion{Name: e.Name, Publisher: e.Publisher, Version: e.Version, CID: e.CID, Local: e.Local}
			return NameInfo{Name: name, Resolved: &v, Versions: []NameVersion{v}}, nil
		}
	}
	return NameInfo{}, fmt.Errorf("%w: no expert %q", ErrNotFound, name)
}

// Status pages and counts as the node does (node/status.go).
func (f *fakeBackend) Status(p Page) Status {
	st := f.status
	for _, e := range st.Experts {
		if e.Local {
			st.Counts.LocalExperts++
		} else {
			st.Counts.RemoteExperts++
		}
	}
	for _, t := range st.Transfers {
		if t.State == StateRunning {
			st.Counts.RunningTransfers++
		}
	}
	st.Counts.Peers, st.Counts.Transfers, st.Counts.Adapters = len(st.Peers), len(st.Transfers), len(st.Adapters)
	page := p.Of(slices.Clone(st.Experts))
	st.Experts, st.ExpertsNext = page.Experts, page.Next
	st.Peers, st.Transfers, st.Adapters = Cut(st.Peers, p), Cut(st.Transfers, p), Cut(st.Adapters, p)
	return st
}

var _ Backend = (*fakeBackend)(nil)

// serve runs s on a loopback port until the test ends and returns its URL.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	// The listener is bound: this waits until Serve accepts.
	if err := NewClient(base, "").Health(ctx); err != nil {
		t.Fatal(err)
	}
	return base
}

func newTestAPI(t *testing.T, token string, opts ...ServerOption) (*Client, *fakeBackend) {
	b := &fakeBackend{experts: map[string]Expert{"bafka": {CID: "bafka", Metadata: expert.Metadata{
		Name: "a",
	}}}, pinned: map[string]bool{}}
	return NewClient(serve(t, NewServer(b, token, nil, opts...)), token), b
}

func TestAPIRoutes(t *testing.T) {
	c, b := newTestAPI(t, "")
	ctx := context.Background()
	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	if id, err := c.Identity(ctx); err != nil || id.ID != "12D3Koo" {
		t.Fatalf("id %+v %v", id, err)
	}
	if es, err := c.Experts(ctx, Filter{Name: "a"}); err != nil || len(es) != 1 {
		t.Fatalf("experts %+v %v", es, err)
	}
	e, err := c.Publish(ctx, PublishRequest{Path: "/x", Name: "n"})
	if err != nil || e.CID != "bafkx" {
		t.Fatalf("publish %+v %v", e, err)
	}
	if err := c.Pin(ctx, "bafka", true); err != nil || !b.pinned["bafka"] {
		t.Fatalf("pin %v", err)
	}
	if tr, err := c.StartFetch(ctx, "bafkq"); err != nil || tr.State != StateRunning {
		t.Fatalf("fetch %+v %v", tr, err)
	}
	if tr, err := c.CancelFetch(ctx, "bafkq"); err != nil || tr.State != StateCanceled {
		t.Fatalf("cancel fetch %+v %v", tr, err)
	}
	if m, err := c.Materialize(ctx, "bafka", MaterializeRequest{Dir: "/d"}); err != nil || m.Dir != "/d" {
		t.Fatalf("materialize %+v %v", m, err)
	}
	if m, err := c.Resolve(ctx, "a", ResolveRequest{}); err != nil || m.Dir != "/adapters/a" {
		t.Fatalf("resolve %+v %v", m, err)
	}
	if _, err := c.Resolve(ctx, "a", ResolveRequest{BaseModel: "gpt2"}); err != nil || b.resolved.BaseModel != "gpt2" {
		t.Fatalf("resolve for a base: %v, backend saw %+v", err, b.resolved)
	}
	if info, err := c.Name(ctx, "a"); err != nil || info.Resolved == nil || info.Resolved.CID != "bafka" {
		t.Fatalf("name %+v %v", info, err)
	}
	var se *StatusError
	if _, err := c.Name(ctx, "nobody/a"); !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Fatalf("name of no expert: %v", err)
	}
}

// TestResolveBody: resolve's body is optional JSON; an unknown field is
// refused, as everywhere.
func TestResolveBody(t *testing.T) {
	b := &fakeBackend{experts: map[string]Expert{"bafka": {CID: "bafka", Metadata: expert.Metadata{Name: "a"}}}}
	h := NewServer(b, "", nil).Handler()
	for body, want := range map[string]int{"": 200, `{"base_model":"m"}`: 200, `{"base":"m"}`: 400, `[`: 400} {
		r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:5180/v1/resolve/a", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("body %q: %d %s, want %d", body, w.Code, w.Body, want)
		}
	}
}

func TestAPIErrorStatuses(t *testing.T) {
	c, _ := newTestAPI(t, "")
	ctx := context.Background()
	for _, tc := range []struct {
		err  error
		code int
	}{
		{func() error { _, err := c.Expert(ctx, "nope"); return err }(), http.StatusNotFound},
		{func() error { _, err := c.Publish(ctx, PublishRequest{}); return err }(), http.StatusBadRequest},
		{c.Pin(ctx, "nope", true), http.StatusNotFound},
		{c.Remove(ctx, "bafka"), http.StatusInternalServerError},
		{func() error { _, err := c.Transfer(ctx, "x"); return err }(), http.StatusNotFound},
		{func() error { _, err := c.CancelFetch(ctx, "x"); return err }(), http.StatusNotFound},
	} {
		var se *StatusError
		if !errors.As(tc.err, &se) || se.Code != tc.code {
			t.Errorf("got %v, want HTTP %d", tc.err, tc.code)
		}
	}
}

func TestAPIToken(t *testing.T) {
	c, _ := newTestAPI(t, "s3cret")
	ctx := context.Background()
	if _, err := c.Identity(ctx); err != nil {
		t.Fatalf("with the token: %v", err)
	}
	wrong := NewClient(c.base, "nope")
	var se *StatusError
	if _, err := wrong.Identity(ctx); !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v", err)
	}
	if err := NewClient(c.base, "").Health(ctx); err != nil {
		t.Fatalf("health must not need the token: %v", err)
	}
}

func TestAPIRejectsUnknownFields(t *testing.T) {
	c, _ := newTestAPI(t, "")
	resp, err := http.Post(c.base+"/v1/publish", "application/json", strings.NewReader(`{"path":"/x","bogus":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func get(t *testing.T, url, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestAPIStatus(t *testing.T) {
	c, b := newTestAPI(t, "s3cret")
	ctx := context.Background()
	// Nil lists come out as [], so the page need not check for null.
	if _, body := get(t, c.base+"/v1/status", "s3cret"); !strings.Contains(body, `"peers": []`) || !strings.Contains(body, `"transfers": []`) {
		t.Errorf("empty status: %s", body)
	}
	b.status = testStatus()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Node.ID != b.status.Node.ID || len(st.Peers) != 1 || len(st.Experts) != 2 || len(st.Transfers) != len(b.status.Transfers) ||
		st.Experts[1].Providers[0] != b.status.Experts[1].Providers[0] || st.Transfers[0].Bytes != b.status.Transfers[0].Bytes {
		t.Fatalf("status %+v", st)
	}
	var se *StatusError
	if _, err := NewClient(c.base, "").Status(ctx); !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Fatalf("status without the token: %v", err)
	}
}

func TestAPIStatusPageFiles(t *testing.T) {
	c, _ := newTestAPI(t, "s3cret")
	for path, want := range map[string]string{
		"/":             "text/html",
		"/?token=x":     "text/html",
		"/ui/app.js":    "text/javascript",
		"/ui/style.css": "text/css",
	} {
		// The page's files load without the token; the data does not.
		resp, body := get(t, c.base+path, "")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) || body == "" {
			t.Errorf("GET %s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
	}
	for _, path := range []string{"/ui/nope.js", "/nope", "/ui/"} {
		if resp, _ := get(t, c.base+path, ""); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
}

func TestAPIMetrics(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "expertd_peers 1")
	})
	c, _ := newTestAPI(t, "s3cret", WithMetrics(metrics))
	if resp, body := get(t, c.base+"/metrics", "s3cret"); resp.StatusCode != http.StatusOK || body != "expertd_peers 1\n" {
		t.Errorf("GET /metrics: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, c.base+"/metrics", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /metrics without the token: %d", resp.StatusCode)
	}
	c, _ = newTestAPI(t, "")
	if resp, _ := get(t, c.base+"/metrics", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics without WithMetrics: %d, want 404", resp.StatusCode)
	}
}
