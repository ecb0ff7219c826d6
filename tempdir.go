package spool

import (
	"fmt"
	"os"
)

// Where spill files go.
//
// A spill directory on a memory-backed file system (tmpfs, ramfs) keeps
// every spilled byte in RAM: the budget would bound nothing. The default
// /tmp of Debian 13, Fedora and Arch is a tmpfs, so NewManager checks the
// file system of the directory (statfs) and, when TempDir is "" and
// os.TempDir() is memory-backed, spills to a disk-backed directory
// instead: /var/tmp, which systemd's documentation recommends for large
// temporary files. NewManager also creates and closes one spill file in the
// directory, so that a directory spool cannot use fails at start, not
// under the first memory pressure.

// fallbackTempDirs are the directories tried, in order, when TempDir is ""
// and os.TempDir() is memory-backed.
var fallbackTempDirs = []string{"/var/tmp"}

// DefaultTempDir returns the directory a Manager with an empty
// Options.TempDir spills to: os.TempDir() if it is backed by a disk, and
// otherwise the first disk-backed directory of /var/tmp. It returns an
// error wrapping ErrMemoryBackedTempDir if there is none.
func DefaultTempDir() (string, error) {
	return defaultTempDir(os.TempDir(), fallbackTempDirs)
}

func defaultTempDir(tmp string, fallbacks []string) (string, error) {
	mem, err := memoryBacked(tmp)
	if err != nil || !mem {
		return tmp, nil // a missing directory is reported by NewManager
	}
	for _, dir := range fallbacks {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		if mem, err := memoryBacked(dir); err == nil && !mem {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w: os.TempDir() %q, and no disk-backed directory among %q; set Options.TempDir", ErrMemoryBackedTempDir, tmp, fallbacks)
}

// resolveTempDir returns the spill directory for o, which has passed the
// other checks of withDefaults: it exists, is a directory, is disk-backed
// (unless o.AllowMemoryBackedTempDir) and takes a spill file.
func (o Options) resolveTempDir() (string, error) {
	dir := o.TempDir
	if dir == "" {
		dir = os.TempDir()
		if !o.AllowMemoryBackedTempDir {
			var err error
			if dir, err = DefaultTempDir(); err != nil {
				return "", fmt.Errorf("%w: TempDir: %w", ErrInvalidOptions, err)
			}
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("%w: TempDir: %w", ErrInvalidOptions, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%w: TempDir %q is not a directory", ErrInvalidOptions, dir)
	}
	if !o.AllowMemoryBackedTempDir {
		mem, err := memoryBacked(dir)
		if err != nil {
			return "", fmt.Errorf("%w: TempDir: %w", ErrInvalidOptions, err)
		}
		if mem {
			return "", fmt.Errorf("%w: %w: %q (set Options.AllowMemoryBackedTempDir to spill there anyway)", ErrInvalidOptions, ErrMemoryBackedTempDir, dir)
		}
	}
	f, err := osFS{}.createTemp(dir, o.Pattern)
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return "", fmt.Errorf("%w: TempDir %q: cannot create a spill file: %w", ErrInvalidOptions, dir, err)
	}
	return dir, nil
}
