package natlab

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/expertd/expertd/cmd/expertd/daemontest"
	"github.com/expertd/expertd/compress"
	"github.com/expertd/expertd/compress/synth"
	"github.com/expertd/expertd/internal/testutil"
	"github.com/expertd/expertd/node/api"
)

var (
	outDir = flag.String("out", "", "TestNATLab writes natlab.md (the table of docs/nat.md) here")
	warm   = flag.Int("warm", 9, "TestNATLab: timed fetches of the expert again, once the connection is up; the median is reported")
	only   = flag.String("cases", "", "TestNATLab: run only these cases (comma-separated names, e.g. sym,fwd)")
	// A variant, not the table of docs/nat.md: over TCP the relay spends
	// less CPU than over QUIC.
	tcpRelay = flag.Bool("tcp-relay", false, "A and B know R (bootstrap and relay) by its TCP address only")
	// Another: the lab's three "machines" share this machine's CPUs, so a
	// relay's work adds to the endpoints'. Pinned, R has a CPU of its own
	// and A and B share the others, in the direct cases as in the relayed.
	pinRelay = flag.Bool("pin-relay", false, "run R on the last CPU and A and B on the others (taskset)")
)

// pinned returns the taskset CPU lists of R and of A and B under
// -pin-relay, or empty ones.
func pinned(t *testing.T) (r, ab string) {
	n := runtime.NumCPU()
	if !*pinRelay {
		return "", ""
	}
	if n < 2 {
		t.Fatalf("-pin-relay needs 2 CPUs, this machine has %d", n)
	}
	if n == 2 {
		return "1", "0"
	}
	return strconv.Itoa(n - 1), fmt.Sprintf("0-%d", n-2)
}

func TestMain(m *testing.M) {
	flag.Parse()
	sweepStale()
	useNetnsTransport()
	code := m.Run()
	daemontest.Clean()
	if expertDir != "" {
		os.RemoveAll(expertDir)
	}
	os.Exit(code)
}

// relay is what R offers as a relay.
type relay int

const (
	relayOn   relay = iota // p2p.relay_service with expertd's defaults (1 GiB, 10 min a circuit)
	relayOff               // no relay service; A and B configure no relay
	relayTiny              // go-libp2p's default limits: 128 KiB, 2 min a circuit
)

func (r relay) String() string {
	return [...]string{"relay (expertd's limits)", "no relay", "relay limited to 128 KiB"}[r]
}

// labCase is one situation of two NATed sites.
type labCase struct {
	name       string // short: it is part of namespace names
	natA, natB nat
	relay      relay
	announce   bool   // A announces its router's forwarded port (p2p.append_announce)
	want       string // how the expert comes: direct, hole-punched or relayed; "" for an error
	wantErr    string // what that error says
}

var cases = []labCase{
	{name: "cone", natA: coneFirewall, natB: coneFirewall, want: "hole-punched"},
	{name: "prc", natA: portRestricted, natB: portRestricted, want: "relayed"},
	{name: "sym", natA: symmetric, natB: symmetric, want: "relayed"},
	{name: "norelay", natA: coneFirewall, natB: coneFirewall, relay: relayOff, wantErr: "has no public or relay address"},
	{name: "fwd", natA: forwarded, natB: coneFirewall, announce: true, want: "direct"},
	{name: "tiny", natA: symmetric, natB: symmetric, relay: relayTiny, wantErr: "limits a relayed connection to 128.0 KiB"},
}

func caseNamed(name string) labCase {
	i := slices.IndexFunc(cases, func(c labCase) bool { return c.name == name })
	return cases[i]
}

// The expert A publishes: a synthetic LoRA whose container is 10 MiB,
// made once per test process.
var (
	expertOnce sync.Once
	expertDir  string
	expertFile string
	expertErr  error
)

func expert(t *testing.T) string {
	t.Helper()
	expertOnce.Do(func() {
		if expertDir, expertErr = os.MkdirTemp("", "natlab-expert-"); expertErr != nil {
			return
		}
		lora := filepath.Join(expertDir, "lora")
		if expertErr = synth.WriteLoRA(lora, 52_428_800, 7); expertErr != nil {
			return
		}
		src, err := compress.Load(lora, "")
		if err != nil {
			expertErr = err
			return
		}
		expertFile = filepath.Join(expertDir, "lab.cpeft")
		f, err := os.Create(expertFile)
		if err != nil {
			expertErr = err
			return
		}
		_, _, expertErr = compress.Encode(f, src, compress.WithDensity(0.6667))
		if err := f.Close(); expertErr == nil {
			expertErr = err
		}
		os.RemoveAll(lora)
	})
	if expertErr != nil {
		t.Fatalf("the lab's expert: %v", expertErr)
	}
	return expertFile
}

// site is one running case: its network and daemons.
type site struct {
	c       labCase
	topo    *topo
	r, a, b *daemon
	cid     string
	fwdAddr []string  // A's announced addresses
	link    linkCheck // plain TCP through the lab's internet
}

// startSite builds c's network and starts R, then A and B. It does not
// wait for them to settle (see ready).
func startSite(t *testing.T, bin string, c labCase) *site {
	t.Helper()
	s := &site{c: c, topo: newTopo(t, c.name, c.natA, c.natB)}
	wan := wanRateFlag(t)
	if wan > 0 {
		s.topo.shapeWAN(t, wan)
	}
	s.link = s.topo.checkWAN(t, checkBytes(wan))
	dir := t.TempDir()
	cpuR, cpuAB := pinned(t)
	rc := nodeConfig{dhtServer: true, cpus: cpuR}
	switch c.relay {
	case relayOn:
		rc.relayService = "    enabled: true\n"
	case relayTiny:
		rc.relayService = "    enabled: true\n    max_circuit_bytes: 128KiB\n    max_circuit_duration: 2m\n"
	}
	s.r = startDaemon(t, bin, s.topo.ns("r"), dir, "R", rc)
	rid := s.r.identity(t).ID
	boot := []string{
		fmt.Sprintf("/ip4/%s/udp/%s/quic-v1/p2p/%s", ipR, p2pPort, rid),
		fmt.Sprintf("/ip4/%s/tcp/%s/p2p/%s", ipR, p2pPort, rid),
	}
	if *tcpRelay {
		boot = boot[1:]
	}
	nc := nodeConfig{bootstrap: boot, cpus: cpuAB}
	if c.relay != relayOff {
		nc.relays = boot
	}
	ac := nc
	if c.announce {
		s.fwdAddr = []string{fmt.Sprintf("/ip4/%s/udp/%s/quic-v1", ipRA, p2pPort), fmt.Sprintf("/ip4/%s/tcp/%s", ipRA, p2pPort)}
		ac.announce = s.fwdAddr
	}
	s.a = startDaemon(t, bin, s.topo.ns("a"), dir, "A", ac)
	s.b = startDaemon(t, bin, s.topo.ns("b"), dir, "B", nc)
	return s
}

// ready waits until the sites are as a user finds them a while after
// starting: A and B hold a slot on the relay (AutoNAT takes about 15 s to
// find a node private), A has published the expert and B has heard of it.
func (s *site) ready(t *testing.T) {
	t.Helper()
	if s.c.relay != relayOff && !s.c.announce {
		for _, d := range []*daemon{s.a, s.b} {
			testutil.Eventually(t, 90*time.Second, s.c.name+": "+d.name+"'s relay reservation", func() bool {
				return len(d.identity(t).Reservations) > 0
			})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := s.a.client().Publish(ctx, api.PublishRequest{Path: expert(t), Name: "lab-" + s.c.name})
	if err != nil {
		t.Fatalf("%s: publish: %v", s.c.name, err)
	}
	s.cid = e.CID
	testutil.Eventually(t, 30*time.Second, s.c.name+": B to hear of the expert", func() bool {
		es, err := s.b.client().Experts(ctx, api.Filter{Remote: true})
		return err == nil && slices.ContainsFunc(es, func(x api.Expert) bool { return x.CID == s.cid })
	})
}

// fetchResult is one fetch of the expert by B, as B's daemon timed it:
// from the request to the expert stored (or the fetch failed).
type fetchResult struct {
	took time.Duration
	err  string
	size uint64
}

// startFetch asks B for the expert; wait waits for the end of that fetch.
func (s *site) startFetch(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.b.client().StartFetch(ctx, s.cid); err != nil {
		t.Fatalf("%s: fetch: %v", s.c.name, err)
	}
}

func (s *site) wait(t *testing.T) fetchResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var tr api.Transfer
	for {
		var err error
		if tr, err = s.b.client().Transfer(ctx, s.cid); err != nil {
			t.Fatalf("%s: transfer: %v", s.c.name, err)
		}
		if tr.State != api.StateRunning {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: the fetch still runs after 5 minutes", s.c.name)
		case <-time.After(20 * time.Millisecond):
		}
	}
	// Transfer reports a stored expert without its times: the node's
	// status keeps them.
	st, err := s.b.client().Status(ctx)
	if err != nil {
		t.Fatalf("%s: status: %v", s.c.name, err)
	}
	for _, x := range st.Transfers {
		if x.CID == s.cid {
			tr = x
		}
	}
	if tr.Finished.IsZero() {
		t.Fatalf("%s: the node's status lacks the fetch's times: %+v", s.c.name, st.Transfers)
	}
	return fetchResult{took: tr.Finished.Sub(tr.Started), err: tr.Error, size: tr.Total}
}

// route says how B reaches A: the kinds of its connections to A, and
// whether its fetches since the log had n such lines went through a relay.
func (s *site) route(t *testing.T) (kinds []string, viaRelay int) {
	t.Helper()
	aid := s.a.identity(t).ID
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps, err := s.b.client().Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.ID == aid {
			for _, c := range p.Conns {
				kinds = append(kinds, c.Kind)
			}
		}
	}
	return kinds, s.b.logHas(t, "fetch: through a relay", aid)
}

// caseResult is what a case measured.
type caseResult struct {
	c        labCase
	cold     fetchResult     // the first fetch
	kinds    []string        // B's connections to A after it
	carrier  string          // what carried the expert
	warm     []time.Duration // fetches again over the connection then up
	warmCPU  cpuTimes        // CPU time of A, R and B over those fetches
	peersOut string          // `expertd peers` on B
	link     linkCheck       // plain TCP through the lab's internet, before the daemons
}

func (r caseResult) warmMedian() time.Duration {
	if len(r.warm) == 0 {
		return 0
	}
	w := slices.Clone(r.warm)
	slices.Sort(w)
	return w[len(w)/2]
}

// measure fetches the expert on B (started already for error cases: see
// runSites) and checks how it came, or why not.
func (s *site) measure(t *testing.T, started bool) caseResult {
	t.Helper()
	res := caseResult{c: s.c, link: s.link}
	if !started {
		s.startFetch(t)
	}
	res.cold = s.wait(t)
	relayed := 0
	res.kinds, relayed = s.route(t)
	res.peersOut = s.b.cli(t, "peers")
	if s.c.wantErr != "" {
		if !strings.Contains(res.cold.err, s.c.wantErr) {
			t.Errorf("%s: fetch error %q, want one saying %q", s.c.name, res.cold.err, s.c.wantErr)
		}
		return res
	}
	if res.cold.err != "" {
		t.Fatalf("%s: fetch failed: %s", s.c.name, res.cold.err)
	}
	switch {
	case relayed > 0:
		res.carrier = "relayed"
	case slices.Contains(res.kinds, "hole-punched"):
		res.carrier = "hole-punched"
	case slices.Contains(res.kinds, "direct"):
		res.carrier = "direct"
	}
	if res.carrier != s.c.want {
		t.Errorf("%s: the expert came %s (B's connections to A: %v), want %s", s.c.name, res.carrier, res.kinds, s.c.want)
	}
	if !strings.Contains(res.peersOut, s.c.want) {
		t.Errorf("%s: expertd peers does not say %s:\n%s", s.c.name, s.c.want, res.peersOut)
	}
	return res
}

// cpuTimes are CPU times of A, R and B, in that order.
type cpuTimes [3]time.Duration

func (c cpuTimes) sum() time.Duration { return c[0] + c[1] + c[2] }

// cpu is the CPU time A, R and B have used.
func (s *site) cpu(t *testing.T) cpuTimes { return cpuTimes{s.a.cpu(t), s.r.cpu(t), s.b.cpu(t)} }

// again removes the expert from B and times fetching it anew, over the
// connection now up; it must come the same way.
func (s *site) again(t *testing.T) time.Duration {
	t.Helper()
	_, before := s.route(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.b.client().Remove(ctx, s.cid); err != nil {
		t.Fatalf("%s: rm: %v", s.c.name, err)
	}
	s.startFetch(t)
	r := s.wait(t)
	if r.err != "" {
		t.Fatalf("%s: fetch again: %s", s.c.name, r.err)
	}
	if k, n := s.route(t); (n > before) != (s.c.want == "relayed") {
		t.Errorf("%s: fetched again %d times through a relay, want %s (connections %v)", s.c.name, n-before, s.c.want, k)
	}
	return r.took
}

// runSites runs the cases: every network and daemon at once (most of the
// time goes to AutoNAT finding the nodes private), then the fetches that
// must fail, all at once (they wait on timeouts), and meanwhile the others
// one by one, so that their times do not share the CPU with each other;
// then, warmReps times, the expert again at each site in turn.
func runSites(t *testing.T, names []string, warmReps int) []caseResult {
	requireLab(t)
	bin := daemontest.Build(t)
	expert(t)
	sites := make([]*site, len(names))
	for i, n := range names {
		sites[i] = startSite(t, bin, caseNamed(n))
	}
	for _, s := range sites {
		s.ready(t)
	}
	for _, s := range sites {
		if s.c.wantErr != "" {
			s.startFetch(t)
		}
	}
	results := make([]caseResult, len(sites))
	for i, s := range sites {
		if s.c.wantErr == "" {
			results[i] = s.measure(t, false)
		}
	}
	// Fetches again go round the sites, so that a change in the machine's
	// load (other processes) falls on every case alike.
	for range warmReps {
		for i, s := range sites {
			if s.c.wantErr == "" {
				cpu0 := s.cpu(t)
				results[i].warm = append(results[i].warm, s.again(t))
				for j, c := range s.cpu(t) {
					results[i].warmCPU[j] += c - cpu0[j]
				}
			}
		}
	}
	for i, s := range sites {
		if s.c.wantErr != "" {
			results[i] = s.measure(t, true)
		}
	}
	for _, r := range results {
		t.Logf("%-8s %-22s %-26s cold %8v  %s%s\nexpertd peers on B:\n%s", r.c.name, r.c.natA, r.c.relay, r.cold.took.Round(time.Millisecond), r.carrier, r.cold.err, r.peersOut)
	}
	return results
}

// TestNATQuick is the lab's part in the default run: hole punching
// through cone NATs, and a relay carrying the expert between symmetric
// NATs, each checked end to end.
func TestNATQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the NAT lab runs daemons in network namespaces for about 30 s")
	}
	if *outDir != "" {
		t.Skip("-out: TestNATLab runs every case")
	}
	runSites(t, []string{"cone", "sym"}, 0)
}

// TestNATLab runs every case, times the fetches and writes DIR/natlab.md
// (-args -out DIR).
func TestNATLab(t *testing.T) {
	if *outDir == "" {
		t.Skip("needs -args -out DIR (it runs every case of the NAT lab, about a minute)")
	}
	var names []string
	for _, c := range cases {
		if *only == "" || slices.Contains(strings.Split(*only, ","), c.name) {
			names = append(names, c.name)
		}
	}
	wan := wanRateFlag(t)
	load, _ := os.ReadFile("/proc/loadavg")
	results := runSites(t, names, *warm)
	if t.Failed() {
		return
	}
	if err := writeReport(filepath.Join(*outDir, "natlab.md"), results, wan, load); err != nil {
		t.Fatal(err)
	}
}
