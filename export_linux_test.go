//go:build linux

package spool

import (
	"os"

	"golang.org/x/sys/unix"
)

// allocatedBytes returns the bytes the file system has allocated to f.
func allocatedBytes(f *os.File) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return st.Blocks * 512, nil
}
