package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// spillFilesIn finds the files this process holds open in dir that have
// no name any more, as spool's spill files have none (O_TMPFILE, or
// unlinked at creation): the links of /proc/self/fd read "DIR/#INODE
// (deleted)" for an anonymous file and "DIR/NAME (deleted)" for an
// unlinked one. It fstats each (through its /proc/self/fd link, which
// leads to the open file, not to a name) and returns their number, the
// sum of their sizes, and the sum of the blocks the file system has
// allocated to them, st_blocks × 512 bytes. The bench cannot reach the
// library's files any other way; nothing else in the process may open
// and unlink files in dir meanwhile.
func spillFilesIn(dir string) (files int, size, allocated int64, err error) {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real // the links name the resolved path
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, 0, 0, err
	}
	for _, e := range ents {
		fd := filepath.Join("/proc/self/fd", e.Name())
		link, err := os.Readlink(fd)
		if err != nil {
			continue // closed meanwhile: the directory's own descriptor
		}
		name, deleted := strings.CutSuffix(link, " (deleted)")
		if !deleted || filepath.Dir(name) != dir {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(fd, &st); err != nil {
			continue
		}
		files++
		size += st.Size
		allocated += st.Blocks * 512
	}
	return files, size, allocated, nil
}

// openFDs returns the number of file descriptors this process has open,
// or -1 where /proc/self/fd cannot be read.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents) - 1 // not the one reading the directory
}
