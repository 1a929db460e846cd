// Package docs holds no code: its tests keep the README a front door and the
// documentation honest about the tree it describes (links that resolve inside
// the repository, every fuzz target listed with a kept corpus, every metric
// listed).
package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const root = ".." // the repository, from this package's directory

// maxReadme keeps README.md a front door; the reference belongs in docs/.
const maxReadme = 16000

// markdown lists the repository's documentation: README.md, CONTRIBUTING.md
// and every .md under docs/ and scripts/.
func markdown(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "CONTRIBUTING.md"}
	for _, dir := range []string{"docs", "scripts"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
				rel, _ := filepath.Rel(root, p)
				files = append(files, rel)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return files
}

func read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The first screen of the README says what it is and gives the two commands,
// and CI runs the same test command.
func TestReadmeFrontDoor(t *testing.T) {
	readme := read(t, "README.md")
	if len(readme) > maxReadme {
		t.Errorf("README.md is %d bytes, over %d: move reference material to docs/", len(readme), maxReadme)
	}
	lines := strings.Split(readme, "\n")
	first := strings.Join(lines[:min(len(lines), 24)], "\n")
	for _, cmd := range []string{"go run ./cmd/expertd daemon", "go test ./..."} {
		if !strings.Contains(first, cmd) {
			t.Errorf("the README's first screen lacks %q", cmd)
		}
	}
	if ci := read(t, ".ci/run"); !regexp.MustCompile(`(?m)^go test (-count=1 )?\./\.\.\.$`).MatchString(ci) {
		t.Errorf(".ci/run does not run the README's test command, go test ./...")
	}
}

var (
	fence    = regexp.MustCompile("(?ms)^ *```.*?^ *```")
	code     = regexp.MustCompile("`[^`\n]*`")
	link     = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading  = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)
	notSlug  = regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	external = regexp.MustCompile(`^[a-z]+:`)
)

// anchors are the GitHub anchors of a markdown file's headings.
func anchors(md string) map[string]bool {
	seen := map[string]int{}
	out := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(fence.ReplaceAllString(md, ""), -1) {
		s := strings.ReplaceAll(notSlug.ReplaceAllString(strings.ToLower(m[1]), ""), " ", "-")
		if n := seen[s]; n > 0 { // GitHub numbers repeated headings
			out[s+"-"+strconv.Itoa(n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

// Every relative link in the documentation names a file of the repository
// (never one beside it, like ../shared), and every #anchor a heading of the
// file it points into.
func TestLinks(t *testing.T) {
	for _, f := range markdown(t) {
		md := read(t, f)
		if strings.Contains(md, "../shared") {
			t.Errorf("%s points outside the repository (../shared)", f)
		}
		text := code.ReplaceAllString(fence.ReplaceAllString(md, ""), "")
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if external.MatchString(target) {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			dest := f
			if file != "" {
				dest = filepath.Join(filepath.Dir(f), file)
				if strings.HasPrefix(dest, "..") {
					t.Errorf("%s: %s is outside the repository", f, target)
					continue
				}
				if _, err := os.Stat(filepath.Join(root, dest)); err != nil {
					t.Errorf("%s: %s does not exist", f, target)
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(dest, ".md") && !anchors(read(t, dest))[anchor] {
				t.Errorf("%s: %s names no heading of %s", f, target, dest)
			}
		}
	}
}

// Every fuzz target of the tree is listed in docs/testing.md and keeps a
// corpus in its package's testdata/fuzz, which go test replays.
func TestFuzzTargets(t *testing.T) {
	doc := read(t, "docs/testing.md")
	decl := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)
	var targets []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir // .git, .ci
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllStringSubmatch(string(b), -1) {
			targets = append(targets, m[1])
			if !strings.Contains(doc, "`"+m[1]+"`") {
				t.Errorf("docs/testing.md does not list %s (%s)", m[1], p)
			}
			corpus, err := os.ReadDir(filepath.Join(filepath.Dir(p), "testdata", "fuzz", m[1]))
			if len(corpus) == 0 {
				t.Errorf("%s (%s) keeps no corpus in testdata/fuzz: %v", m[1], p, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(targets, "FuzzReader") {
		t.Fatalf("found no fuzz targets (%v): is the walk broken?", targets)
	}
}

// Every metric the daemon exports is described in docs/metrics.md.
func TestMetricsListed(t *testing.T) {
	doc := read(t, "docs/metrics.md")
	name := regexp.MustCompile(`"(expertd_[a-z_]+)"`)
	n := 0
	err := filepath.WalkDir(filepath.Join(root, "node"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range name.FindAllStringSubmatch(string(b), -1) {
			n++
			if !strings.Contains(doc, "`"+m[1]) {
				t.Errorf("docs/metrics.md does not describe %s (%s)", m[1], p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("found no metrics under node/: is the walk broken?")
	}
}
