//go:build linux || darwin || freebsd

package compress

import "syscall"

// diskSpace is statfs(2): blocks available to unprivileged users and total
// blocks, times the block size.
func diskSpace(dir string) (avail, size int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	bs := uint64(st.Bsize)
	return clampInt64(uint64(st.Bavail) * bs), clampInt64(uint64(st.Blocks) * bs), nil
}

func clampInt64(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}
