// Package api serves expertd's JSON HTTP API (loopback by default) over a
// Backend, the running node: one route table, read top to bottom, with the
// middleware stacked explicitly. Client is the Go client the CLI uses.
//
// The same port serves a status page at / (files embedded from ui/, no
// external assets) that polls GET /v1/status every 2 s, and, with
// WithMetrics, Prometheus metrics at GET /metrics.
//
// With an API token, every route but GET /v1/health and the page's own files
// needs "Authorization: Bearer TOKEN". The page is opened as
// http://HOST:PORT/?token=TOKEN and its script sends the token on as that
// header. The token then sits in the browser's address bar and history:
// open the page that way only on a machine you trust. Prometheus sends it with
// `authorization: {credentials: TOKEN}` in the scrape config.
//
// A loopback API is reachable from every page a browser opens, so before
// any route each request passes the guard (guard.go): a Host naming this API
// (loopback, the address the connection arrived on, Access.Hosts), no
// foreign Origin or cross-site fetch (Access.Origins get CORS), and
// Content-Type: application/json on every POST, PUT, PATCH and DELETE.
// Nothing changes state on GET. Limits (limits.go) bound time per request,
// header bytes and connections (conns.go); GET /v1/experts and /v1/status
// answer one page at a time (page.go).
package api
