package memory

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procMem is what /proc/PID/status says of a process's memory, in bytes.
type procMem struct {
	RSS, HWM int64 // VmRSS, VmHWM (the kernel's peak RSS)
}

// readProcMem reads VmRSS and VmHWM of process pid.
func readProcMem(pid int) (procMem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	var m procMem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.HWM
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return procMem{}, fmt.Errorf("pid %d: %s: %w", pid, key, err)
		}
		*dst = kb << 10
	}
	if err := sc.Err(); err != nil {
		return procMem{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	if m.RSS == 0 {
		return procMem{}, fmt.Errorf("pid %d: no VmRSS in /proc status", pid)
	}
	return m, nil
}

// sampler reads the RSS of some processes every period until stopped and
// keeps the largest value seen for each.
type sampler struct {
	pids    []int
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	peak    map[int]int64
	samples int
	err     error
}

// startSampler starts sampling pids every period.
func startSampler(period time.Duration, pids ...int) *sampler {
	s := &sampler{pids: pids, stop: make(chan struct{}), done: make(chan struct{}), peak: map[int]int64{}}
	go s.run(period)
	return s
}

func (s *sampler) run(period time.Duration) {
	defer close(s.done)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		s.sample()
		select {
		case <-s.stop:
			s.sample()
			return
		case <-tick.C:
		}
	}
}

func (s *sampler) sample() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	for _, pid := range s.pids {
		m, err := readProcMem(pid)
		if err != nil {
			if s.err == nil {
				s.err = err
			}
			continue
		}
		s.peak[pid] = max(s.peak[pid], m.RSS)
	}
}

// Stop stops sampling and returns the peak RSS of each pid and the number
// of samples taken.
func (s *sampler) Stop() (map[int]int64, int, error) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.samples, s.err
}
