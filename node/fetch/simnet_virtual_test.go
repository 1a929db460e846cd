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
// not this machine. It logs the x_floor of every run; run with
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
				}
			})
		})
	}
}
