// Package memory measures the expertd daemon's memory against its targets:
// the idle RSS of a daemon process and its peak while it fetches a 100 MiB
// expert.
//
// It holds only TestMemory, which builds the real binary, runs two daemon
// processes on 127.0.0.1 and writes its table to DIR/memory.md. It runs only
// when given a directory, and is skipped otherwise (as in CI):
//
//	go test ./deploy/bench/memory -run TestMemory -v -count=1 -args -out DIR
package memory
