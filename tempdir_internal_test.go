//go:build linux

package spool

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDefaultTempDirNoFallback: when os.TempDir() and every fallback are
// memory-backed, DefaultTempDir returns ErrMemoryBackedTempDir rather than
// spilling into RAM.
func TestDefaultTempDirNoFallback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs (CI runs as root)")
	}
	var dirs []string
	for _, name := range []string{"tmp", "fallback"} {
		dir := filepath.Join(t.TempDir(), name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", dir).Run() })
		dirs = append(dirs, dir)
	}
	if _, err := defaultTempDir(dirs[0], dirs[1:]); !errors.Is(err, ErrMemoryBackedTempDir) {
		t.Errorf("defaultTempDir with only tmpfs = %v, want ErrMemoryBackedTempDir", err)
	}
	disk := t.TempDir()
	if mem, err := memoryBacked(disk); err != nil || mem {
		t.Skipf("t.TempDir() is memory-backed here (%v)", err)
	}
	if got, err := defaultTempDir(dirs[0], []string{dirs[1], disk}); got != disk || err != nil {
		t.Errorf("defaultTempDir = %q, %v; want %q", got, err, disk)
	}
}
