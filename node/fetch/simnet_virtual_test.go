package fetch

import (
	"flag"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/x/simlibp2p"
)

var simnetFlag = flag.Bool("simnet", false, "run TestFetchSimnetVirtualTime (seconds of CPU)")

// TestFetchSimnetVirtualTime is BenchmarkFetchSimnet on synctest's virtual
// clock: time only passes when every goroutine waits, so the links are
// exact (simnet's 1500-byte bucket, or the benchmark's 32 KiB one for
// comparison), CPU time counts for nothing and a neighbour's load cannot
// blur the figures. What it measures is the protocol and the transport,
// not this machine, so it can hold the fetch to the plain HTTP transfer of
// the same bytes on the same link: a fetch from one provider within
// simSlack of HTTP (a round trip more is 8% here), from three within
// simSlack of one, and none faster than the bytes at line rate and one
// round trip (a broken measurement). It logs the x_floor of every run;
// run with
//
//	go test ./node/fetch -run SimnetVirtual -simnet -v
func TestFetchSimnetVirtualTime(t *testing.T) {
	if !*simnetFlag || testing.Short() {
		t.Skip("needs -simnet: seconds of CPU")
	}
	for _, burst := range []int{0, 32 << 10} {
		t.Run(fmt.Sprint("bucket=", max(burst, 1500)), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				link := simLink{RTT: 100 * time.Millisecond, BitsPerSecond: 100 * simlibp2p.OneMbps, Burst: burst}
				s := newSimScene(t, link, 10<<20)
				floor := s.floor().Seconds()
				physics := (link.floor(len(s.data)) - link.RTT).Seconds() / floor
				median := map[string]float64{}
				for _, c := range s.cases() {
					var fresh, warm []float64
					for range 3 {
						fresh = append(fresh, s.measure(t, c, true).Seconds()/floor)
					}
					for range 3 { // on the connection the last fresh run warmed
						warm = append(warm, s.measure(t, c, false).Seconds()/floor)
					}
					slices.Sort(fresh)
					slices.Sort(warm)
					t.Logf("%-12s x_floor fresh %.3f  warm %.3f", c.name, fresh, warm)
					if fresh[0] < physics || warm[0] < physics {
						t.Errorf("%s: %.3f x floor, below the bytes at line rate and one round trip (%.3f): the measurement is broken", c.name, min(fresh[0], warm[0]), physics)
					}
					median[c.name+" fresh"], median[c.name+" warm"] = fresh[1], warm[1]
				}
				for _, conn := range []string{"fresh", "warm"} {
					one, three, http := median["providers=1 "+conn], median["providers=3 "+conn], median["http "+conn]
					if one > simSlack*http {
						t.Errorf("%s: one provider %.3f x floor, HTTP %.3f: the fetch costs more than the transfer", conn, one, http)
					}
					if three > simSlack*one {
						t.Errorf("%s: three providers %.3f x floor, one %.3f: splitting the fetch costs", conn, three, one)
					}
				}
			})
		})
	}
}

// simSlack is how much slower than its reference (HTTP, or one provider)
// a fetch may be in TestFetchSimnetVirtualTime: virtual time is exact,
// but the order goroutines run in still moves a transfer by up to 3%.
const simSlack = 1.05
