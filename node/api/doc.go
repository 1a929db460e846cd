// Package api serves expertd's JSON HTTP API (loopback by default) over a
// Backend, the running node: one route table, read top to bottom, with the
// middleware stacked explicitly. Client is the Go client the CLI uses.
package api
