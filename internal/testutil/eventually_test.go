package testutil

import (
	"testing"
	"time"
)

func TestEventuallyWaitsForCondition(t *testing.T) {
	n := 0
	Eventually(t, time.Minute, "third poll", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("polled %d times, want 3", n)
	}
}

// fatalTB records a Fatalf instead of ending the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = format
	panic(f)
}

func TestEventuallyFailsAfterWithin(t *testing.T) {
	f := &fatalTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != f {
				panic(r)
			}
		}()
		Eventually(f, 20*time.Millisecond, "never", func() bool { return false })
	}()
	if f.msg == "" {
		t.Fatal("a condition that never holds did not fail the test")
	}
}
