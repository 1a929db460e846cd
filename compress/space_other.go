//go:build !(linux || darwin || freebsd)

package compress

// diskSpace is unknown on this system: free space is not checked.
var diskSpace statfsFunc
