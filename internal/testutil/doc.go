// Package testutil holds what the tests of several packages share: waiting
// on a condition, free loopback addresses, random bytes, and skipping a
// test whose tool is missing (a failure under CI).
package testutil
