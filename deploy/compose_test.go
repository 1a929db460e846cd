package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
)

const fixture = "compress/testdata/peft/python-lora-r16"

// TestCompose brings up docker-compose.yml (three daemons and the demo),
// checks that the demo published the fixture on node1 and fetched it on node2,
// stops node1 and fetches the expert on node3, which never had it: it must
// come from node2. Every adapter written is compared with the host's own
// compress + decompress of the fixture.
func TestCompose(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the docker compose cluster test (it builds an image and runs containers)")
	}
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	start := time.Now()
	step := func(format string, args ...any) {
		t.Logf("%6.1fs "+format, append([]any{time.Since(start).Seconds()}, args...)...)
	}

	// Build the image (under a tag of this run's own) and bring the cluster up.
	if _, err := c.run(ctx, filepath.Join(c.root, "scripts", "docker-build.sh"), c.image); err != nil {
		t.Fatalf("scripts/docker-build.sh: %v", err)
	}
	t.Cleanup(func() { c.docker(context.Background(), "rmi", c.image) })
	step("built %s; compose project %s", c.image, c.project)
	t.Cleanup(c.down)
	c.compose(ctx, 2*time.Minute, "up", "-d") // returns once node1 and node2 are healthy and the demo started
	step("cluster up: node1, node2, node3 healthy")

	// The demo: publish on node1, fetch on node2.
	demo := c.compose(ctx, 10*time.Second, "ps", "-q", "demo")
	code := strings.TrimSpace(c.mustDocker(ctx, 2*time.Minute, "wait", demo))
	if code != "0" {
		t.Fatalf("demo exited %s", code)
	}
	fields := strings.Fields(c.mustDocker(ctx, 10*time.Second, "logs", demo)) // its stdout: the CID
	if len(fields) == 0 {
		t.Fatal("the demo printed no CID")
	}
	cid := fields[len(fields)-1]
	step("demo done: published %s on node1 and fetched it on node2", cid)

	want := reference(ctx, t, c.root, cid)

	// node3 hears of both providers before the publisher goes away.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var es []api.Expert
		ls := c.compose(ctx, 30*time.Second, "exec", "-T", "node3", "/expertd", "ls", "--remote", "--json")
		if err := json.Unmarshal([]byte(ls), &es); err != nil {
			t.Fatalf("ls --remote --json on node3: %v\n%s", err, ls)
		}
		i := slices.IndexFunc(es, func(e api.Expert) bool { return e.CID == cid })
		if i >= 0 && es[i].Local {
			t.Fatalf("node3 already holds %s before fetching it", cid)
		}
		if i >= 0 && len(es[i].Providers) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node3 does not know node1 and node2 as providers of %s after 30s:\n%s", cid, ls)
		}
		time.Sleep(250 * time.Millisecond)
	}
	step("node3 knows 2 providers")

	c.compose(ctx, time.Minute, "stop", "-t", "5", "node1")
	step("node1 stopped")
	c.compose(ctx, 2*time.Minute, "exec", "-T", "node3", "/expertd", "fetch", cid, "-o", "/data/fetched")
	step("node3 fetched %s without node1", cid)

	for _, w := range []struct{ service, dir string }{{"node2", "/data/demo/python"}, {"node3", "/data/fetched"}} {
		id := c.compose(ctx, 10*time.Second, "ps", "-q", w.service)
		dst := filepath.Join(t.TempDir(), w.service)
		c.mustDocker(ctx, time.Minute, "cp", id+":"+w.dir, dst)
		sameFiles(t, want, dst)
	}
	step("the adapters on node2 and node3 equal the host's decompress of the fixture")

	// The CLI in a node publishes a directory of that node, as documented.
	out := c.compose(ctx, time.Minute, "exec", "-T", "node2", "/expertd", "publish", "/fixtures/python-lora-r16",
		"--name", "python-dense", "--density", "0.5")
	if f := strings.Fields(out); len(f) == 0 || !strings.HasPrefix(f[len(f)-1], "baf") {
		t.Fatalf("publish in node2 printed no CID:\n%s", out)
	}
	step("node2 published a directory of its own: %s", strings.TrimSpace(out))
}

// cluster is one compose project, named uniquely so runs do not clash.
type cluster struct {
	t       *testing.T
	root    string   // the repository
	prefix  []string // docker compose or docker-compose, -p and -f
	project string
	image   string
	env     []string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		testutil.Missing(t, "docker is not installed; skipping the docker compose cluster test")
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		testutil.Missing(t, "no docker engine answers (%v: %s); skipping the docker compose cluster test", err, bytes.TrimSpace(out))
	}
	var compose []string
	if exec.Command("docker", "compose", "version").Run() == nil {
		compose = []string{"docker", "compose"}
	} else if p, err := exec.LookPath("docker-compose"); err == nil {
		compose = []string{p}
	} else {
		testutil.Missing(t, "neither `docker compose` nor docker-compose is installed; skipping the docker compose cluster test")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	id := randomHex(t, 4)
	project := "expertdtest" + id
	return &cluster{
		t: t, root: root, project: project,
		prefix: append(compose, "-p", project, "-f", filepath.Join(root, "docker-compose.yml")),
		image:  "expertd:test-" + id,
		env: append(os.Environ(),
			"EXPERTD_IMAGE=expertd:test-"+id,
			"EXPERTD_API_TOKEN="+randomHex(t, 16)),
	}
}

// compose runs a compose command for at most timeout and returns its stdout;
// a failure ends the test.
func (c *cluster) compose(ctx context.Context, timeout time.Duration, args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := c.runCompose(ctx, args...)
	if err != nil {
		c.t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return out
}

// mustDocker runs a docker command for at most timeout and returns its
// stdout; a failure ends the test.
func (c *cluster) mustDocker(ctx context.Context, timeout time.Duration, args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := c.docker(ctx, args...)
	if err != nil {
		c.t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (c *cluster) docker(ctx context.Context, args ...string) (string, error) {
	return c.run(ctx, "docker", args...)
}

func (c *cluster) runCompose(ctx context.Context, args ...string) (string, error) {
	return c.run(ctx, c.prefix[0], append(slices.Clone(c.prefix[1:]), args...)...)
}

// run runs a command in the repository with the cluster's environment and
// returns its stdout; an error carries stdout and stderr.
func (c *cluster) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = c.root, c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return stdout.String(), fmt.Errorf("%w\n%s%s", err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String(), nil
}

// down removes the containers, network and volumes, after logging the
// containers' output if the test failed.
func (c *cluster) down() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if c.t.Failed() {
		logs, _ := c.runCompose(ctx, "logs", "--no-color")
		if len(logs) > 64<<10 {
			logs = "...\n" + logs[len(logs)-64<<10:]
		}
		c.t.Logf("compose logs:\n%s", logs)
	}
	if _, err := c.runCompose(ctx, "down", "-v", "-t", "5", "--remove-orphans"); err != nil {
		c.t.Errorf("compose down: %v", err)
	}
}

// reference compresses and decompresses the fixture with the binary the
// image holds, on the host, checks that its CID is cid and returns the
// directory it wrote.
func reference(ctx context.Context, t *testing.T, root, cid string) string {
	t.Helper()
	bin, dir := filepath.Join(root, "build", "expertd"), t.TempDir()
	expertd := func(args ...string) string {
		out, err := exec.CommandContext(ctx, bin, args...).Output()
		if err != nil {
			t.Fatalf("expertd %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	container := filepath.Join(dir, "python.cpeft")
	expertd("compress", filepath.Join(root, fixture), "-o", container)
	if got := expertd("cid", container); got != cid {
		t.Fatalf("the fixture compresses to %s on the host, the cluster published %s", got, cid)
	}
	out := filepath.Join(dir, "python")
	expertd("decompress", container, "-o", out)
	return out
}

// sameFiles checks that dirs want and got hold the same files, byte for byte.
func sameFiles(t *testing.T, want, got string) {
	t.Helper()
	names := func(dir string) []string {
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, e := range es {
			n = append(n, e.Name())
		}
		return n
	}
	wn, gn := names(want), names(got)
	if !slices.Equal(wn, gn) {
		t.Fatalf("%s holds %v, want %v", got, gn, wn)
	}
	for _, n := range wn {
		w, err := os.ReadFile(filepath.Join(want, n))
		if err != nil {
			t.Fatal(err)
		}
		g, err := os.ReadFile(filepath.Join(got, n))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w, g) {
			t.Errorf("%s differs from the reference (%d bytes, want %d)", filepath.Join(got, n), len(g), len(w))
		}
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
