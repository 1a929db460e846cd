package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
)

// mistyped is a command a user gets wrong and what its error must say.
type mistyped struct {
	args []string
	env  []string // KEY=VALUE
	want []string // in the message
}

// TestMistypedCommands runs commands with the mistakes a new user makes
// and checks each message: it says what is wrong with what the user typed,
// names it once, and carries no internal detail (a temporary file, a
// package's prefix, a system call) nor a prefix said twice.
func TestMistypedCommands(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.cpeft")
	file := filepath.Join(fixture, "adapter_config.json")
	const unknown = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
	container := filepath.Join(dir, "ok.cpeft")
	if _, err := runCLI(t, "compress", fixture, "-o", container); err != nil {
		t.Fatal(err)
	}
	cases := []mistyped{
		{args: []string{"compress", "/nonexistent", "-o", out}, want: []string{"compress /nonexistent: no such directory"}},
		{args: []string{"compress", file, "-o", out}, want: []string{"it is a file (give the directory that holds the adapter)"}},
		{args: []string{"compress", dir, "-o", out}, want: []string{"no adapter_config.json in it"}},
		{args: []string{"compress", fixture, "-o", "/nonexistent/dir/x.cpeft"}, want: []string{"compress: -o /nonexistent/dir/x.cpeft: no directory /nonexistent/dir"}},
		{args: []string{"compress", fixture, "-o", dir}, want: []string{"-o " + dir + " is a directory"}},
		{args: []string{"compress", fixture, "-o", out}, env: []string{"EXPERTD_COMPRESS_DENSITY=abc"}, want: []string{"EXPERTD_COMPRESS_DENSITY=abc: not a number"}},
		{args: []string{"compress", fixture, "-o", out, "--density", "2"}, want: []string{"density 2 not in (0, 1]"}},
		{args: []string{"compress", fixture, "-o", out, "--base", "/nonexistent"}, want: []string{"base /nonexistent: no such directory"}},
		{args: []string{"compress", fixture, "-o", out, "--density", "abc"}, want: []string{"compress: --density abc: not a number", "usage: expertd compress ADAPTER_DIR -o FILE.cpeft [flags]"}},
		{args: []string{"compress", "--bogus"}, want: []string{"compress: unknown flag: --bogus", "usage: expertd compress ADAPTER_DIR"}},
		{args: []string{"compress"}, want: []string{"usage: expertd compress ADAPTER_DIR"}},
		{args: []string{"ls", "--jsn"}, want: []string{"usage: expertd ls [flags]"}},
		{args: []string{"--bogus"}, want: []string{"usage: expertd COMMAND [flags]"}},
		{args: []string{"cid", "/nonexistent"}, want: []string{"cid /nonexistent: no such file or directory"}},
		{args: []string{"cid", dir}, want: []string{"cid " + dir + ": is a directory"}},
		{args: []string{"inspect", "/nonexistent"}, want: []string{"inspect /nonexistent: no such file or directory"}},
		{args: []string{"inspect", dir}, want: []string{"is a directory"}},
		{args: []string{"decompress", "/nonexistent", "-o", filepath.Join(dir, "out")}, want: []string{"decompress /nonexistent: no such file or directory"}},
		{args: []string{"decompress", container, "-o", fixture}, want: []string{fixture + " holds files (--force writes into it)"}},
		{args: []string{"decompress", container, "-o", container}, want: []string{container + " is not a directory"}},
		{args: []string{"fetch", "bad", "--api", "127.0.0.1:1"}, want: []string{"fetch: bad: cannot reach the expertd daemon"}},
		{args: []string{"fetch", unknown, "-o", fixture, "--api", "127.0.0.1:1"}, want: []string{"holds 2 entries (--force writes into it)"}},
		{args: []string{"fetch", unknown, "-o", container, "--force", "--api", "127.0.0.1:1"}, want: []string{"-o " + container + " is not a directory"}},
		{args: []string{"pin", "Qmnope"}, want: []string{`pin: "Qmnope" is not a CID`}},
		{args: []string{"rm", "bafy"}, want: []string{`rm: "bafy" is not a CID`}},
		{args: []string{"publish", "/nonexistent", "--api", "127.0.0.1:1"}, want: []string{"publish /nonexistent: no such file or directory"}},
		{args: []string{"publish", file, "--api", "127.0.0.1:1"}, want: []string{"publish " + file + ": not a .cpeft container"}},
	}
	if !testing.Short() { // messages that come from a daemon
		bin := daemontest.Build(t)
		d := daemontest.Start(t, bin, t.TempDir(), "a", "")
		cases = append(cases,
			mistyped{args: []string{"pin", unknown, "--api", d.API}, want: []string{"not found: expert " + unknown}},
			mistyped{args: []string{"rm", unknown, "--api", d.API}, want: []string{"not found: expert " + unknown}},
			mistyped{args: []string{"fetch", "bad", "--api", d.API}, want: []string{`fetch: "bad" is neither a CID nor a name this node knows`}},
			mistyped{args: []string{"ls", "--versions", "bad", "--api", d.API}, want: []string{`ls --versions bad: not found: "bad"`}},
		)
	}
	for _, c := range cases {
		for _, kv := range c.env {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		_, err := runCLI(t, c.args...)
		for _, kv := range c.env {
			k, _, _ := strings.Cut(kv, "=")
			os.Unsetenv(k)
		}
		if err == nil {
			t.Errorf("%v: no error", c.args)
			continue
		}
		msg := err.Error()
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%v: %q lacks %q", c.args, msg, w)
			}
		}
		if bad := internalDetail(msg); bad != "" {
			t.Errorf("%v: %q shows %s", c.args, msg, bad)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Error("a failed compress left its output")
	}
}

// internalDetail says what in msg a user should not see, or "".
func internalDetail(msg string) string {
	seen := map[string]bool{}
	for _, part := range strings.Split(strings.ToLower(msg), ": ") {
		part = strings.TrimSpace(part)
		if seen[part] {
			return "a prefix twice (" + part + ")"
		}
		seen[part] = true
	}
	for _, s := range []string{".tmp-", "unixfs:", "store:", "stat ", "open ", "invalid cid:", "strconv."} {
		if strings.Contains(msg, s) {
			return s
		}
	}
	return ""
}

func TestInternalDetail(t *testing.T) {
	for _, msg := range []string{
		`bad request: cid "bad": invalid cid: invalid cid: expected 1 as the cid version number, got: 0`,
		"not found: store: not found: expert bafk",
		"unixfs: open /nonexistent: no such file or directory",
		"compress x: open /nonexistent/dir/.tmp-3500238476: no such file or directory",
	} {
		if internalDetail(msg) == "" {
			t.Errorf("%q passes", msg)
		}
	}
}
