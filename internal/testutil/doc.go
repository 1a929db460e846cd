// Package testutil holds what the tests of several packages share: waiting
// on a condition, running a service for the length of a test, free
// loopback addresses, random bytes, and skipping a test whose tool is
// missing (a failure under CI). It imports only the standard library, so
// that any package's tests can use it.
package testutil
