// Command mutate reads the mutant list of scripts/mutants and applies one
// mutant to a copy of the tree; scripts/mutants/run.sh drives it.
//
//	mutate list LIST         one line per mutant: name, file, packages, run, equivalent, breaks (0x1f-separated)
//	mutate apply LIST NAME DIR   replace the mutant's original snippet, found exactly once, in DIR/file
//
// The list's format is described at the top of scripts/mutants/mutants.txt.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// mutant is one record of the list.
type mutant struct {
	name, file, pkgs, run, equivalent, breaks string
	orig, repl                                []string // snippet lines, without their leading - or +
	line                                      int      // where the record starts in the list
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// parse reads the records of a list: "key: value" lines, then the original
// snippet's lines each after a "-", then the replacement's after a "+";
// records are separated by blank lines, "#" starts a comment line.
func parse(path string) ([]mutant, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mutant
	var cur *mutant
	var errs []error
	end := func() {
		if cur == nil {
			return
		}
		switch {
		case !nameRE.MatchString(cur.name):
			errs = append(errs, fmt.Errorf("%s:%d: name %q: want lower-case letters, digits and dashes", path, cur.line, cur.name))
		case cur.file == "" || cur.pkgs == "" || cur.run == "" || cur.breaks == "":
			errs = append(errs, fmt.Errorf("%s:%d: %s: file, pkg, run and breaks are required", path, cur.line, cur.name))
		case len(cur.orig) == 0:
			errs = append(errs, fmt.Errorf("%s:%d: %s: no original snippet (- lines)", path, cur.line, cur.name))
		}
		for _, m := range out {
			if m.name == cur.name {
				errs = append(errs, fmt.Errorf("%s:%d: %s: name used twice", path, cur.line, cur.name))
			}
		}
		out = append(out, *cur)
		cur = nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			end()
			continue
		case strings.HasPrefix(line, "#") && cur == nil:
			continue
		}
		if cur == nil {
			cur = &mutant{line: n}
		}
		switch {
		case strings.HasPrefix(line, "-"):
			if len(cur.repl) > 0 {
				errs = append(errs, fmt.Errorf("%s:%d: a - line after the + lines", path, n))
			}
			cur.orig = append(cur.orig, line[1:])
		case strings.HasPrefix(line, "+"):
			cur.repl = append(cur.repl, line[1:])
		default:
			k, v, ok := strings.Cut(line, ":")
			v = strings.TrimSpace(v)
			if !ok || len(cur.orig) > 0 {
				errs = append(errs, fmt.Errorf("%s:%d: want key: value before the snippet, got %q", path, n, line))
				continue
			}
			switch k {
			case "name":
				cur.name = v
			case "file":
				cur.file = v
			case "pkg":
				cur.pkgs = v
			case "run":
				cur.run = v
			case "breaks":
				cur.breaks = v
			case "equivalent":
				cur.equivalent = v
			default:
				errs = append(errs, fmt.Errorf("%s:%d: unknown key %q", path, n, k))
			}
		}
	}
	end()
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// apply replaces m's original snippet, which must occur exactly once, in
// dir/m.file.
func apply(m mutant, dir string) error {
	path := filepath.Join(dir, m.file)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	orig, repl := strings.Join(m.orig, "\n"), strings.Join(m.repl, "\n")
	if n := strings.Count(string(b), orig); n != 1 {
		return fmt.Errorf("%s: the original snippet occurs %d times in %s, want once (the code changed: update the list)", m.name, n, m.file)
	}
	return os.WriteFile(path, []byte(strings.Replace(string(b), orig, repl, 1)), 0o644)
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: mutate list LIST | mutate apply LIST NAME DIR")
	}
	ms, err := parse(args[1])
	if err != nil {
		return err
	}
	switch {
	case args[0] == "list" && len(args) == 2:
		for _, m := range ms {
			fmt.Println(strings.Join([]string{m.name, m.file, m.pkgs, m.run, m.equivalent, m.breaks}, "\x1f"))
		}
		return nil
	case args[0] == "apply" && len(args) == 4:
		for _, m := range ms {
			if m.name == args[2] {
				return apply(m, args[3])
			}
		}
		return fmt.Errorf("no mutant %q in %s", args[2], args[1])
	}
	return errors.New("usage: mutate list LIST | mutate apply LIST NAME DIR")
}
