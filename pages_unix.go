//go:build unix && !race

package spool

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapping reports whether pages maps slices: true on systems with mmap,
// outside the race detector (pages.go).
const mapping = true

var pageSize = os.Getpagesize()

// mapAnon maps n bytes of private anonymous memory, read and write, zeroed,
// without transparent huge pages (declineHugePages).
//
// unix.Mmap is not used: it holds one lock of the whole process across the
// system call, and with 200 goroutines on 2 cores its holder, preempted,
// kept the others waiting for milliseconds (runtime/trace of the uploads
// scenario). MmapPtr takes no lock; pages keeps the mappings itself.
func mapAnon(n int) ([]byte, error) {
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, err
	}
	b := unsafe.Slice((*byte)(p), n)
	declineHugePages(b)
	return b, nil
}

// unmap unmaps a mapping of mapAnon, whole. If munmap fails (ENOMEM:
// unmapping it would split a mapping of the kernel's list past
// vm.max_map_count), it gives the pages back to the system instead
// (MADV_DONTNEED: the range stays mapped, and reads as zeros) and returns
// the error.
func unmap(b []byte) error {
	err := unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)))
	if err != nil {
		_ = unix.Madvise(b, unix.MADV_DONTNEED) // the RSS, at least
	}
	return err
}

// release gives the pages of b, a slot of a slab, back to the system
// (MADV_DONTNEED): the range stays mapped, and reads as zeros once touched
// again. It is advice: if it fails, the pages stay, and nothing else
// changes.
func release(b []byte) { _ = unix.Madvise(b, unix.MADV_DONTNEED) }
