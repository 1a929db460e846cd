package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMergeRoute: POST /v1/merge passes the request to the backend and
// returns the merged expert; a bad body is refused before it.
func TestMergeRoute(t *testing.T) {
	c, _ := newTestAPI(t, "")
	ctx := context.Background()
	e, err := c.Merge(ctx, MergeRequest{Parents: []string{"bafka", "bafkb"}, Method: "ta", Name: "m", Publish: true})
	if err != nil || e.CID != "bafkm" || e.Merge == nil || !slices.Equal(e.Merge.Parents, []string{"bafka", "bafkb"}) {
		t.Fatalf("merge: %+v %v", e, err)
	}
	var se *StatusError
	if _, err := c.Merge(ctx, MergeRequest{Parents: []string{"bafka"}}); !errors.As(err, &se) || se.Code != http.StatusBadRequest {
		t.Fatalf("one parent: %v", err)
	}

	h := NewServer(&fakeBackend{}, "", nil).Handler()
	big := `{"parents":["` + strings.Repeat("b", maxBody) + `","bafkb"]}`
	for body, want := range map[string]int{
		`{"parents":["a","b"],"publish":true}`: 200,
		`{"parents":["a","b"],"density":"x"}`:  400,
		`{"parents":["a","b"],"private":true}`: 400, // unknown field
		`{"parents":`:                          400,
		big:                                    400, // over maxBody
	} {
		r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:5180/v1/merge", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("body %.40q: status %d, want %d: %s", body, w.Code, want, w.Body)
		}
	}
}

// TestMergeCancelledWithClient: a client that goes away cancels the merge
// it asked for (the route lifts the write deadline: a merge may take long).
func TestMergeCancelledWithClient(t *testing.T) {
	b := &fakeBackend{merging: make(chan context.Context, 1)}
	c := NewClient(serve(t, NewServer(b, "", nil)), "")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Merge(ctx, MergeRequest{Parents: []string{"bafka", "bafkb"}})
		errc <- err
	}()
	var merging context.Context
	select {
	case merging = <-b.merging:
	case <-time.After(10 * time.Second):
		t.Fatal("the merge did not reach the backend")
	}
	cancel() // the client goes away
	select {
	case <-merging.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the merge went on after its client went away")
	}
	if err := <-errc; err == nil {
		t.Fatal("a cancelled merge returned no error")
	}
}
