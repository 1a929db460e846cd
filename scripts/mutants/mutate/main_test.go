package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The list in this directory parses, and apply replaces a snippet found
// exactly once, refusing one found twice or not at all (the code changed
// under the list).
func TestListAndApply(t *testing.T) {
	ms, err := parse("../mutants.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 40 {
		t.Fatalf("%d mutants in the list", len(ms))
	}
	dir := t.TempDir()
	list := filepath.Join(dir, "list.txt")
	write(t, list, "# a comment\n\nname: one\nfile: a.go\nbreaks: x\npkg: ./a\nrun: .\n-\tx := 1\n-\ty := 2\n+\tx := 2\n\n"+
		"name: twice\nfile: a.go\nbreaks: x\npkg: ./a\nrun: .\nequivalent: because\n-\tz := 3\n+\tz := 4\n")
	ms, err = parse(list)
	if err != nil || len(ms) != 2 || ms[1].equivalent != "because" {
		t.Fatalf("%+v, %v", ms, err)
	}
	write(t, filepath.Join(dir, "a.go"), "\tx := 1\n\ty := 2\n\tz := 3\n\tz := 3\n")
	if err := apply(ms[0], dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.go")); string(b) != "\tx := 2\n\tz := 3\n\tz := 3\n" {
		t.Fatalf("applied: %q", b)
	}
	if err := apply(ms[0], dir); err == nil || !strings.Contains(err.Error(), "0 times") {
		t.Fatalf("a snippet no longer there: %v", err)
	}
	if err := apply(ms[1], dir); err == nil || !strings.Contains(err.Error(), "2 times") {
		t.Fatalf("a snippet found twice: %v", err)
	}
	write(t, list, "name: Bad Name\nfile: a.go\n-x\n")
	if _, err := parse(list); err == nil {
		t.Fatal("a bad record parsed")
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
