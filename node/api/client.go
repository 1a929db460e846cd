package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls a node's API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewClient returns a client for the API at addr (host:port or a URL). An
// unspecified host (0.0.0.0:5180, the daemon's api.listen in a container,
// say) is dialled on loopback: the API refuses a Host naming no address.
func NewClient(addr, token string) *Client {
	if h, port, err := net.SplitHostPort(addr); err == nil {
		if ip, err := netip.ParseAddr(h); err == nil && ip.IsUnspecified() {
			addr = net.JoinHostPort(netip.IPv6Loopback().String(), port)
			if ip.Is4() {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
		}
	}
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 10 * time.Minute}}
}

// ErrDaemon means the daemon could not be reached.
var ErrDaemon = errors.New("cannot reach the expertd daemon (is `expertd daemon` running?)")

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil || method != http.MethodGet {
		// The API refuses a request that may change state without it.
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDaemon, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e errorBody
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &StatusError{Code: resp.StatusCode, Msg: e.Error}
		}
		return &StatusError{Code: resp.StatusCode, Msg: strings.TrimSpace(string(data))}
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// StatusError is an error response.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Code) }

// Health reports whether the daemon answers.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/v1/health", nil, nil)
}

func (c *Client) Identity(ctx context.Context) (Identity, error) {
	var v Identity
	return v, c.do(ctx, http.MethodGet, "/v1/id", nil, &v)
}

func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var v []Peer
	return v, c.do(ctx, http.MethodGet, "/v1/peers", nil, &v)
}

// Experts lists every expert f selects, page after page.
func (c *Client) Experts(ctx context.Context, f Filter) ([]Expert, error) {
	var all []Expert
	cursor := ""
	for {
		p, err := c.ExpertPage(ctx, f, MaxLimit, cursor)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Experts...)
		if p.Next == "" || p.Next == cursor {
			return all, nil
		}
		cursor = p.Next
	}
}

// ExpertPage lists one page: at most limit experts (0: the server's
// default) after cursor ("": from the start).
func (c *Client) ExpertPage(ctx context.Context, f Filter, limit int, cursor string) (ExpertPage, error) {
	q := url.Values{}
	if f.Remote {
		q.Set("remote", "1")
	}
	for k, v := range map[string]string{"base_model": f.BaseModel, "peft_type": f.PeftType, "name": f.Name, "cursor": cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var v ExpertPage
	return v, c.do(ctx, http.MethodGet, "/v1/experts?"+q.Encode(), nil, &v)
}

func (c *Client) Expert(ctx context.Context, cid string) (Expert, error) {
	var v Expert
	return v, c.do(ctx, http.MethodGet, "/v1/experts/"+url.PathEscape(cid), nil, &v)
}

func (c *Client) Publish(ctx context.Context, r PublishRequest) (Expert, error) {
	var v Expert
	return v, c.do(ctx, http.MethodPost, "/v1/publish", r, &v)
}

// Merge asks the node to merge experts by CID (POST /v1/merge).
func (c *Client) Merge(ctx context.Context, r MergeRequest) (Expert, error) {
	var e Expert
	return e, c.do(ctx, http.MethodPost, "/v1/merge", r, &e)
}

func (c *Client) StartFetch(ctx context.Context, cid string) (Transfer, error) {
	var v Transfer
	return v, c.do(ctx, http.MethodPost, "/v1/fetch/"+url.PathEscape(cid), nil, &v)
}

func (c *Client) Transfer(ctx context.Context, cid string) (Transfer, error) {
	var v Transfer
	return v, c.do(ctx, http.MethodGet, "/v1/fetch/"+url.PathEscape(cid), nil, &v)
}

// CancelFetch cancels the daemon's fetch of cid and returns the transfer
// as it ended.
func (c *Client) CancelFetch(ctx context.Context, cid string) (Transfer, error) {
	var v Transfer
	return v, c.do(ctx, http.MethodDelete, "/v1/fetch/"+url.PathEscape(cid), nil, &v)
}

func (c *Client) Materialize(ctx context.Context, cid string, r MaterializeRequest) (Materialized, error) {
	var v Materialized
	return v, c.do(ctx, http.MethodPost, "/v1/experts/"+url.PathEscape(cid)+"/materialize", r, &v)
}

func (c *Client) Pin(ctx context.Context, cid string, pinned bool) error {
	verb := "unpin"
	if pinned {
		verb = "pin"
	}
	return c.do(ctx, http.MethodPost, "/v1/experts/"+url.PathEscape(cid)+"/"+verb, nil, nil)
}

func (c *Client) Remove(ctx context.Context, cid string) error {
	return c.do(ctx, http.MethodDelete, "/v1/experts/"+url.PathEscape(cid), nil, nil)
}

// Status returns the status with the first page of experts.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var v Status
	return v, c.do(ctx, http.MethodGet, "/v1/status", nil, &v)
}

// Resolve asks the daemon to fetch and materialize the expert called name
// (for r.BaseModel, if set) for the inference server.
func (c *Client) Resolve(ctx context.Context, name string, r ResolveRequest) (Materialized, error) {
	var v Materialized
	return v, c.do(ctx, http.MethodPost, "/v1/resolve/"+url.PathEscape(name), r, &v)
}

// Name asks what the daemon knows of an expert name ("name" or
// "publisher/name"): the version it resolves to and the versions known.
func (c *Client) Name(ctx context.Context, name string) (NameInfo, error) {
	var v NameInfo
	return v, c.do(ctx, http.MethodGet, "/v1/resolve/"+url.PathEscape(name), nil, &v)
}
