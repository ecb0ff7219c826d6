//go:build !linux

package spool

// cgroupLimit returns ErrNoMemoryLimit: cgroups exist only on Linux, so
// outside it MemoryLimit knows only GOMEMLIMIT.
func cgroupLimit() (int64, string, error) { return 0, "", ErrNoMemoryLimit }
