package testutil

import (
	"fmt"
	"os"
	"testing"
)

// InCI reports whether the tests run under CI: CI is set, and not to
// "false" or "0". .ci/run sets it.
func InCI() bool {
	ci := os.Getenv("CI")
	return ci != "" && ci != "false" && ci != "0"
}

// Missing ends a test that cannot run here because a tool or a permission
// it needs is missing (docker, chromium, network namespaces): it is
// skipped with the reason, except under CI, where the tool is installed and
// its absence is a failure, not a silent skip.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI is set: this test must run here)", msg)
	}
	t.Skip(msg + " (with CI=true this fails)")
}
