//go:build linux && !race

package spool

import "golang.org/x/sys/unix"

// mappedNow reports whether b's address range is mapped in this process,
// and true: madvise fails with ENOMEM on a range that is not mapped.
func mappedNow(b []byte) (mapped, known bool) {
	return unix.Madvise(b, unix.MADV_NORMAL) == nil, true
}
