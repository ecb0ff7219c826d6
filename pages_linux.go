//go:build !race

package spool

import "golang.org/x/sys/unix"

// declineHugePages advises Linux not to back b with transparent huge
// pages: where they are enabled for all memory, a huge page faulted in
// over neighbouring mappings would hold memory that no slice was charged
// for. It is advice: its failure changes nothing.
func declineHugePages(b []byte) { _ = unix.Madvise(b, unix.MADV_NOHUGEPAGE) }
