package spool

import (
	"io"
	"os"
)

// spillFile is what a Buffer needs of the file it rolls over to. *os.File
// implements it; tests substitute files that fail on demand.
type spillFile interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Close() error
}

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
		return f, nil
	}
	return createNamed(dir, pattern)
}

// createNamed is the fallback where anonymous files are not supported: a
// named file, created with O_EXCL and mode 0600 by os.CreateTemp (which
// never follows a symlink planted at its random name), unlinked at once so
// that nothing is left behind even if the process dies.
func createNamed(dir, pattern string) (*os.File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
