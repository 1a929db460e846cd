package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
)

const loraFixture = "../../compress/testdata/peft/python-lora-r16"

// variant copies the fixture LoRA into dir/name with its config's
// base_model_name_or_path set to base ("" keeps null) and r to rank.
func variant(t *testing.T, dir, name, base string, rank int) string {
	t.Helper()
	out := filepath.Join(dir, name)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(loraFixture, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "adapter_config.json" {
			if base != "" {
				b = bytes.Replace(b, []byte(`"base_model_name_or_path": null`), []byte(`"base_model_name_or_path": "`+base+`"`), 1)
			}
			b = bytes.Replace(b, []byte(`"r": 16,`), []byte(fmt.Sprintf(`"r": %d,`, rank)), 1)
		}
		if err := os.WriteFile(filepath.Join(out, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// startPair starts a publisher (data and config under tmp/a) and a daemon
// beside an inference server (under tmp/b, adapters in tmp/adapters): see
// startServer.
func startPair(t *testing.T, bin, tmp, extra string) (pub, srv *daemon, adapters string) {
	t.Helper()
	pub = startPublisher(t, bin, filepath.Join(tmp, "a"))
	adapters = filepath.Join(tmp, "adapters")
	return pub, startServer(t, bin, filepath.Join(tmp, "b"), pub, adapters, extra), adapters
}

// startServer starts a daemon (data and config under root) beside an
// inference server serving gpt2-tiny, trusting pub and bootstrapping to
// it, with its adapters in adapters and extra, inference.* lines.
func startServer(t *testing.T, bin, root string, pub *daemon, adapters, extra string) *daemon {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "expertd"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("version: 1\ninference:\n  adapters_dir: %s\n  served_model: gpt2-tiny\n  %s\ntrust:\n  publishers: [%s]\n",
		adapters, extra, daemontest.WaitIdentity(t, pub.Client()).ID)
	if err := os.WriteFile(filepath.Join(root, "expertd", "expertd.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return startDaemon(t, bin, root, "server", pub.Addr)
}

// startPublisher starts a daemon with its own data and config root.
func startPublisher(t *testing.T, bin, root string) *daemon {
	t.Helper()
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return startDaemon(t, bin, root, "publisher", "")
}

func publish(t *testing.T, d *daemon, dir, name string) string {
	t.Helper()
	e, err := d.Client().Publish(context.Background(), api.PublishRequest{Path: dir, Name: name})
	if err != nil {
		t.Fatalf("publish %s: %v", name, err)
	}
	return e.CID
}

func expertOn(t *testing.T, d *daemon, cid string) api.Expert {
	t.Helper()
	e, err := d.Client().Expert(context.Background(), cid)
	if err != nil {
		t.Fatalf("expert %s: %v", cid, err)
	}
	return e
}

// TestHandOffPolicy: experts of two base models, one over the rank limit
// and one with no base, published on one daemon and held by another that
// serves one base: only the matching, loadable one is written, its config
// as published, and /v1/status says why each other one is not. A third
// daemon, accepting experts with no base, writes that one with the base
// filled in.
func TestHandOffPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two daemons")
	}
	bin, tmp := buildBinary(t), t.TempDir()
	pub, srv, adapters := startPair(t, bin, tmp, `want: ["name=*"]`)

	src := filepath.Join(tmp, "src")
	good := variant(t, src, "good", "gpt2-tiny", 16)
	cids := map[string]string{
		"good":    publish(t, pub, good, "good"),
		"llama":   publish(t, pub, variant(t, src, "llama", "meta-llama/Llama-3.2-1B", 16), "llama"),
		"rank32":  publish(t, pub, variant(t, src, "rank32", "gpt2-tiny", 32), "rank32"),
		"no-base": publish(t, pub, variant(t, src, "no-base", "", 16), "no-base"),
	}
	testutil.Eventually(t, 30*time.Second, "the matching expert prefetched and written", func() bool {
		_, err := os.Stat(filepath.Join(adapters, "good", "adapter_model.safetensors"))
		return err == nil
	})
	got, _ := os.ReadFile(filepath.Join(adapters, "good", "adapter_config.json"))
	want, _ := os.ReadFile(filepath.Join(good, "adapter_config.json"))
	if !bytes.Equal(got, want) {
		t.Errorf("the written config differs from the published one:\n%s", got)
	}
	// Want rules fetch nothing the server could not load; the user may
	// still fetch them by CID, and the hand-off still refuses them.
	for _, name := range []string{"llama", "rank32", "no-base"} {
		if e := expertOn(t, srv, cids[name]); e.Local {
			t.Errorf("%s was prefetched", name)
		}
		runBin(t, bin, filepath.Join(tmp, "b"), "fetch", cids[name], "--api", srv.API)
	}
	reasons := map[string]string{"llama": "other_base", "rank32": "rank", "no-base": "unknown_base"}
	testutil.Eventually(t, 30*time.Second, "every expert held, the others with their reason", func() bool {
		st, err := srv.Client().Status(context.Background())
		if err != nil {
			return false
		}
		seen := 0
		for _, e := range st.Experts {
			for name, reason := range reasons {
				if e.CID == cids[name] && e.Local && e.NotHandedOff != nil && e.NotHandedOff.Reason == reason {
					seen++
				}
			}
		}
		return seen == len(reasons)
	})
	st, _ := srv.Client().Status(context.Background())
	for _, e := range st.Experts {
		if e.CID == cids["good"] && e.NotHandedOff != nil {
			t.Errorf("the handed-off expert lists a reason: %+v", e.NotHandedOff)
		}
		if e.NotHandedOff != nil && e.NotHandedOff.Detail == "" {
			t.Errorf("%s: a reason without a detail", e.Name)
		}
	}
	var names []string
	for _, a := range st.Adapters {
		names = append(names, a.Name)
	}
	if !slices.Equal(names, []string{"good"}) {
		t.Errorf("status adapters %v, want [good]", names)
	} else if a := st.Adapters[0]; !strings.HasPrefix(a.ServerPath, filepath.Join(adapters, ".versions", cids["good"])+"-") {
		t.Errorf("status adapter %+v: want its version as the server path", a)
	}
	ents, _ := os.ReadDir(adapters)
	var files []string
	for _, e := range ents {
		files = append(files, e.Name())
	}
	if !slices.Equal(files, []string{".versions", "good"}) {
		t.Errorf("adapters dir holds %v", files)
	}
	if vs, _ := os.ReadDir(filepath.Join(adapters, ".versions")); len(vs) != 1 || !strings.HasPrefix(vs[0].Name(), cids["good"]+"-") {
		t.Errorf("versions %v", vs)
	}

	// A node that accepts experts with no base writes that one too, with
	// the served model filled in and nothing else changed.
	open := filepath.Join(tmp, "adapters-open")
	startServer(t, bin, filepath.Join(tmp, "c"), pub, open, "accept_unknown_base: true\n  want: [\"name=no-base\"]")
	cfg := filepath.Join(open, "no-base", "adapter_config.json")
	testutil.Eventually(t, 30*time.Second, "the expert with no base written where it is accepted", func() bool {
		_, err := os.Stat(filepath.Join(open, "no-base", "adapter_model.safetensors"))
		return err == nil
	})
	got, _ = os.ReadFile(cfg)
	want, _ = os.ReadFile(filepath.Join(src, "no-base", "adapter_config.json"))
	want = bytes.Replace(want, []byte(`"base_model_name_or_path": null`), []byte(`"base_model_name_or_path": "gpt2-tiny"`), 1)
	if !bytes.Equal(got, want) {
		t.Errorf("the config of the expert with no base:\n%s\nwant\n%s", got, want)
	}
}

// TestVLLMPlugin runs the vLLM resolver plugin's Python tests (with a
// stand-in of the two vLLM modules it imports) against real daemons: an
// expert only another node holds is fetched, written and returned; another
// base and an unknown name give None.
func TestVLLMPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two daemons")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		testutil.Missing(t, "python3 not found")
	}
	plugin, _ := filepath.Abs("../../integrations/vllm")
	bin, tmp := buildBinary(t), t.TempDir()
	pub, srv, adapters := startPair(t, bin, tmp, "")
	cid := publish(t, pub, variant(t, filepath.Join(tmp, "src"), "sql", "gpt2-tiny", 16), "team-sql")
	testutil.Eventually(t, 30*time.Second, "the serving node learns of team-sql", func() bool {
		es, err := srv.Client().Experts(context.Background(), api.Filter{Remote: true, Name: "team-sql"})
		return err == nil && len(es) == 1 && len(es[0].Providers) > 0
	})
	if e := expertOn(t, srv, cid); e.Local {
		t.Fatal("the serving node holds the expert before anyone asked for it")
	}

	cmd := exec.Command(py, "-m", "unittest", "discover", "-v", "-s", "tests", "-t", ".")
	cmd.Dir = plugin
	cmd.Env = append(os.Environ(),
		"PYTHONPATH="+plugin+string(os.PathListSeparator)+filepath.Join(plugin, "tests", "stubs"),
		"PYTHONDONTWRITEBYTECODE=1",
		"EXPERTD_API="+srv.API, "EXPERTD_TEST_NAME=team-sql", "EXPERTD_TEST_BASE=gpt2-tiny", "EXPERTD_TEST_ADAPTERS="+adapters)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("test_fetched_written_and_loaded")) || bytes.Contains(out, []byte("skipped")) {
		t.Fatalf("python3 -m unittest: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	if e := expertOn(t, srv, cid); !e.Local {
		t.Error("the expert was not fetched")
	}
}
