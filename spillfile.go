package spool

import (
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// spillFile is what the arena needs of a segment file (arena.go). osFile
// implements it; tests substitute files that fail on demand.
type spillFile interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Close() error
}

// puncher is implemented by spill files that can give a range back to the
// file system while keeping their size (a hole): the arena punches out
// frames whose extents are all free.
type puncher interface {
	punch(off, n int64) error
}

// mover is implemented by spill files that can copy a range of
// themselves to another place in the kernel, without the bytes passing
// through user memory (copy_file_range on Linux). copyWithin copies the n
// bytes at src to dst; the ranges do not overlap. It returns an error
// wrapping errors.ErrUnsupported if the file cannot (the arena then copies
// through memory from then on).
type mover interface {
	copyWithin(src, dst, n int64) error
}

// osFile is a spill file of the real file system.
type osFile struct{ *os.File }

// fileSystem creates spill files. The Manager calls it without holding its
// own lock, possibly from many goroutines at once.
type fileSystem interface {
	// createTemp creates a new, empty, anonymous file in dir, readable and
	// writable only by the current user, that disappears when closed.
	createTemp(dir, pattern string) (spillFile, error)
}

// osFS is the real file system.
type osFS struct{}

func (osFS) createTemp(dir, pattern string) (spillFile, error) {
	if f, err := openAnonymous(dir); err == nil || !anonymousUnsupported(err) {
		if err != nil {
			return nil, err
		}
		return osFile{f}, nil
	}
	f, err := createNamed(dir, pattern)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// createNamed is the fallback where anonymous files are not supported: a
// named file, created with O_CREATE|O_EXCL|O_NOFOLLOW|O_CLOEXEC and mode
// 0600 (so a file or symlink planted at its name makes the open fail and a
// new name is tried; nothing planted is ever followed or opened), and
// unlinked at once so that nothing is left behind even if the process dies.
func createNamed(dir, pattern string) (*os.File, error) {
	return createNamedWith(dir, pattern, randomName)
}

func createNamedWith(dir, pattern string, random func() string) (*os.File, error) {
	prefix, suffix := pattern, ""
	if i := strings.LastIndexByte(pattern, '*'); i >= 0 {
		prefix, suffix = pattern[:i], pattern[i+1:]
	}
	for try := 0; ; try++ {
		name := filepath.Join(dir, prefix+random()+suffix)
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
		if errors.Is(err, fs.ErrExist) && try < 10000 {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := os.Remove(name); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
}

func randomName() string {
	return strconv.FormatUint(rand.Uint64(), 36)
}
