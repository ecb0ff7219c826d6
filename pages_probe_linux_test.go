//go:build linux && !race

package spool

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// mappedNow reports whether b's address range is mapped in this process,
// and true: madvise fails with ENOMEM on a range that is not mapped.
func mappedNow(b []byte) (mapped, known bool) {
	return unix.Madvise(b, unix.MADV_NORMAL) == nil, true
}

// residentNow reports whether any page of b is in memory (mincore), and
// whether it could tell.
func residentNow(b []byte) (resident, known bool) {
	vec := make([]byte, (len(b)+pageSize-1)/pageSize)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	if errno != 0 {
		return false, false
	}
	for _, v := range vec {
		if v&1 != 0 {
			return true, true
		}
	}
	return false, true
}
