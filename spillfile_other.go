//go:build !linux

package spool

import (
	"errors"
	"os"
)

// noFollow: os.OpenFile already sets O_CLOEXEC where it exists; O_EXCL
// alone refuses a name that exists, symlink or not.
const noFollow = 0

var errNoAnonymous = errors.New("anonymous files not supported")

func openAnonymous(dir string) (*os.File, error) { return nil, errNoAnonymous }

func anonymousUnsupported(err error) bool { return errors.Is(err, errNoAnonymous) }

// memoryBacked reports false: outside Linux, spool does not tell a
// memory-backed file system from a disk.
func memoryBacked(dir string) (bool, error) { return false, nil }

// punch is not supported outside Linux: freed frames keep their space
// until they are reused or cut off the end of their file.
func (f osFile) punch(off, n int64) error { return errors.ErrUnsupported }

// copyWithin is not supported outside Linux: the arena moves a block that
// outgrows its extent through memory.
func (f osFile) copyWithin(src, dst, n int64) error { return errors.ErrUnsupported }

// newHandoff creates the file Buffer.File fills, in dir, under a random
// name (O_EXCL, mode 0600). Its done opens it again read-only by that name,
// at offset 0, removes the name, and closes the file.
func newHandoff(dir, pattern string) (f *os.File, done func() (*os.File, error), err error) {
	f, err = os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, nil, err
	}
	return f, func() (*os.File, error) {
		defer os.Remove(f.Name())
		defer f.Close()
		return os.Open(f.Name())
	}, nil
}
