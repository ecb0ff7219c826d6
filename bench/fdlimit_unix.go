//go:build unix

package main

import "syscall"

// setFDLimit sets this process's limits on open files and returns the
// limits in force afterwards.
//
// With limit 0 it raises the soft limit to the hard limit. The Go runtime
// raises the soft limit to one below the hard limit at start already
// (syscall's init, go.dev/issue/46279); this takes the last one. Raising
// the hard limit needs privileges a server usually lacks, so it is left
// alone: the scenarios report what they could not do within it.
//
// With a limit above 0 it lowers both limits to it (or to the hard limit,
// if that is lower already), as a server confined to few descriptors
// would run: the blobs scenario's spool child runs so. Anyone may lower
// the hard limit, but only a privileged process may raise it again, so
// this is for a child process, not for a test that goes on to run others.
func setFDLimit(limit uint64) (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	want := lim
	if limit == 0 {
		want.Cur = want.Max
	} else {
		want.Max = atMost(want.Max, limit)
		want.Cur = want.Max
	}
	if want != lim {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return uint64(lim.Cur), uint64(lim.Max), err
		}
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, 0, err
		}
	}
	return uint64(lim.Cur), uint64(lim.Max), nil
}

// raiseFDLimit raises the soft limit on open files to the hard limit:
// setFDLimit(0).
func raiseFDLimit() (soft, hard uint64, err error) { return setFDLimit(0) }

// atMost returns v, or limit if v is larger: Rlimit's fields are uint64
// on most systems, int64 on a few.
func atMost[T int64 | uint64](v T, limit uint64) T {
	if uint64(v) > limit {
		return T(limit)
	}
	return v
}
