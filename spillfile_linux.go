package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// noFollow makes the named fallback refuse a symlink at its name, and
// keeps its descriptor out of child processes.
const noFollow = unix.O_NOFOLLOW | unix.O_CLOEXEC

// openAnonymous opens an unnamed file in dir with O_TMPFILE: it has no name
// to collide with, to be replaced by a symlink, or to be left behind by a
// crash. O_EXCL keeps it from ever being linked into the directory.
func openAnonymous(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, "(spool spill file)")), nil
}

// anonymousUnsupported reports whether err from openAnonymous means the
// kernel or file system cannot make anonymous files, so a named temporary
// file should be tried instead.
func anonymousUnsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL)
}

// memoryBacked reports whether dir is on a file system that keeps its
// files in RAM: tmpfs or ramfs.
func memoryBacked(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	// Type is an int32 on 32-bit systems, where RAMFS_MAGIC overflows it:
	// compare the 32 bits the magic numbers have.
	t := uint32(st.Type)
	return t == uint32(unix.TMPFS_MAGIC) || t == uint32(unix.RAMFS_MAGIC), nil
}

// WriteAt writes p at off with pwrite(2) on the file's descriptor.
//
// Not through os.File's WriteAt: its layers (os, internal/poll, syscall)
// add about 360 bytes of stack to spool's own, and a write to a spill file
// is the deepest call that a goroutine feeding a spilled buffer makes for
// every piece (goroutine stacks: doc.go). What internal/poll adds beyond
// the call, a reference that keeps Close from giving the descriptor's
// number away while the call runs, the arena ensures by its own protocol:
// a segment's extents are read and written only under the lock of the
// buffer that holds them, and arena.close runs once every buffer is
// closed (arena.go). The errors are os.File's: an *os.PathError.
func (f osFile) WriteAt(p []byte, off int64) (int, error) {
	fd := int(f.Fd())
	n := 0
	for n < len(p) {
		k, err := unix.Pwrite(fd, p[n:], off+int64(n))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			runtime.KeepAlive(f.File)
			return n, f.pathError("write", err)
		case k == 0:
			return n, f.pathError("write", io.ErrShortWrite)
		}
		n += k
	}
	runtime.KeepAlive(f.File)
	return n, nil
}

// ReadAt reads len(p) bytes at off with pread(2) on the file's descriptor,
// for the reasons WriteAt gives. Like os.File's ReadAt, it returns io.EOF
// when the file ends first.
func (f osFile) ReadAt(p []byte, off int64) (int, error) {
	fd := int(f.Fd())
	n := 0
	for n < len(p) {
		k, err := unix.Pread(fd, p[n:], off+int64(n))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			runtime.KeepAlive(f.File)
			return n, f.pathError("read", err)
		case k == 0:
			return n, io.EOF
		}
		n += k
	}
	runtime.KeepAlive(f.File)
	return n, nil
}

// pathError returns err as an error of operation op on the file, as
// os.File's own methods report them. It is a call of its own so that the
// frames of WriteAt and ReadAt, on the deepest path of a write, do not
// hold the error's construction (goroutine stacks: doc.go).
//
//go:noinline
func (f osFile) pathError(op string, err error) error {
	return &os.PathError{Op: op, Path: f.Name(), Err: err}
}

// punch deallocates [off, off+n) of the file, keeping its size: the range
// reads as zeros and takes no space.
func (f osFile) punch(off, n int64) error {
	// Through SyscallConn, not Fd: the arena punches with no lock held,
	// and the descriptor must stay the file's until fallocate returns,
	// even if arena.close closes the file meanwhile (the os.File then
	// closes it once Control returns; a number from Fd could be reused by
	// another file by the time fallocate runs, which would punch that).
	rc, err := f.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			err = unix.Fallocate(int(fd), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
		})
		if cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
	return nil
}

// copyWithin copies the n bytes at src to dst with copy_file_range, in
// the kernel. The errors that Go's own use of copy_file_range
// (os.File.ReadFrom) takes to mean the kernel, the file system or a
// sandbox will not copy (ENOSYS before Linux 4.5, EXDEV, EOPNOTSUPP,
// EINVAL, EPERM under seccomp filters, EIO from some network file
// systems, and 0 bytes copied at once, as kernels before 5.19 may report),
// when nothing was copied yet, wrap errors.ErrUnsupported: the caller
// copies through memory instead, which reports a real disk error again if
// there was one.
func (f osFile) copyWithin(src, dst, n int64) error {
	// On the descriptor, as WriteAt: the arena copies a buffer's extents
	// under the buffer's lock.
	fd := int(f.Fd())
	copied := false
	var err error
	for n > 0 {
		var k int
		k, err = unix.CopyFileRange(fd, &src, fd, &dst, int(n), 0)
		if err == unix.EINTR {
			err = nil
			continue
		}
		if err == nil && k == 0 {
			if !copied {
				err = errors.ErrUnsupported
			} else {
				err = fmt.Errorf("%w: %d bytes short of the end of the file", ErrCorrupt, n)
			}
		}
		if err != nil {
			break
		}
		copied = true
		n -= int64(k) // src and dst advanced by k
	}
	runtime.KeepAlive(f.File)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrCorrupt):
		return err
	case !copied && (errors.Is(err, errors.ErrUnsupported) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EXDEV) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EIO)):
		return fmt.Errorf("copy_file_range: %w (%w)", errors.ErrUnsupported, err)
	}
	return &os.PathError{Op: "copy_file_range", Path: f.Name(), Err: err}
}

// newHandoff creates the file Buffer.File fills: anonymous, as a spill
// file, in dir. Its done returns a read-only descriptor of it at offset 0,
// opened through /proc (the file has no name), and closes the file.
func newHandoff(dir, pattern string) (f *os.File, done func() (*os.File, error), err error) {
	sf, err := osFS{}.createTemp(dir, pattern)
	if err != nil {
		return nil, nil, err
	}
	f = sf.(osFile).File
	return f, func() (*os.File, error) {
		defer f.Close()
		return os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), os.O_RDONLY|unix.O_CLOEXEC, 0)
	}, nil
}
