//go:build unix

package main

import "syscall"

// raiseFDLimit raises this process's soft limit on open files to its hard
// limit, and returns the limits in force afterwards. The Go runtime raises
// the soft limit to one below the hard limit at start already (syscall's
// init, go.dev/issue/46279); this takes the last one. Raising the hard
// limit needs privileges a server usually lacks, so it is left alone: the
// scenarios report what they could not do within it.
func raiseFDLimit() (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	if lim.Cur < lim.Max {
		want := lim
		want.Cur = want.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return uint64(lim.Cur), uint64(lim.Max), err
		}
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, 0, err
		}
	}
	return uint64(lim.Cur), uint64(lim.Max), nil
}
