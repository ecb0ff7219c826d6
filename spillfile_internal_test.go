//go:build linux

package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// checkPrivate checks that spill file f has mode 0600 and no name in dir.
func checkPrivate(t *testing.T, f *os.File, dir string) {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %v, want 0600", perm)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d names left in the directory", len(ents))
	}
}

// TestCreateNamed checks the fallback used where O_TMPFILE is missing: the
// file works, is mode 0600, and has no name left in the directory.
func TestCreateNamed(t *testing.T) {
	dir := t.TempDir()
	f, err := createNamed(dir, "x-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkPrivate(t, f, dir)
	if _, err := f.WriteAt([]byte("hello"), 10); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 5)
	if _, err := f.ReadAt(p, 10); err != nil || string(p) != "hello" {
		t.Errorf("ReadAt = %q, %v", p, err)
	}
}

// TestOSFSCreateTemp checks the real path: an anonymous file where the
// system supports it, mode 0600, no name in the directory.
func TestOSFSCreateTemp(t *testing.T) {
	dir := t.TempDir()
	sf, err := osFS{}.createTemp(dir, "x-*")
	if err != nil {
		t.Fatal(err)
	}
	f := sf.(osFile).File
	defer f.Close()
	checkPrivate(t, f, dir)
	if af, err := openAnonymous(dir); err != nil {
		t.Logf("anonymous files not supported here (%v); the named fallback was used", err)
	} else {
		af.Close()
	}
}

// TestCreateNamedRefusesSymlink plants a symlink at the first name the
// fallback tries: it is not followed (its target is untouched), and the
// file is created under the next name.
func TestCreateNamedRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(target, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "x-planted")); err != nil {
		t.Fatal(err)
	}
	names := []string{"planted", "fresh"}
	f, err := createNamedWith(dir, "x-*", func() string { n := names[0]; names = names[1:]; return n })
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("spilled"), 0); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); string(got) != "precious" {
		t.Errorf("symlink target now holds %q", got)
	}
	if len(names) != 0 {
		t.Errorf("the second name was not tried")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "x-planted" {
		t.Errorf("directory holds %v, want only the planted symlink", ents)
	}
	// Descriptors are close-on-exec.
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("F_GETFD = %#x, %v: not close-on-exec", flags, err)
	}
}

// TestAnonymousCloexec: the O_TMPFILE descriptor is close-on-exec.
func TestAnonymousCloexec(t *testing.T) {
	f, err := openAnonymous(t.TempDir())
	if err != nil {
		t.Skipf("no O_TMPFILE here: %v", err)
	}
	defer f.Close()
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("F_GETFD = %#x, %v: not close-on-exec", flags, err)
	}
}

// TestOSFileReadWriteAt checks osFile's own pread and pwrite against what
// os.File's ReadAt and WriteAt do: whole writes, reads that fill p, io.EOF
// with the bytes there were at the end of the file, and an *os.PathError
// naming the file when the system call fails.
func TestOSFileReadWriteAt(t *testing.T) {
	sf, err := osFS{}.createTemp(t.TempDir(), "x-*")
	if err != nil {
		t.Fatal(err)
	}
	f := sf.(osFile)
	defer f.Close()
	data := bytes.Repeat([]byte("0123456789"), 1000)
	if n, err := f.WriteAt(data, 100); n != len(data) || err != nil {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	p := make([]byte, len(data))
	if n, err := f.ReadAt(p, 100); n != len(p) || err != nil || !bytes.Equal(p, data) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if n, err := f.ReadAt(p[:10], 0); n != 10 || err != nil || !bytes.Equal(p[:10], make([]byte, 10)) {
		t.Errorf("ReadAt of the hole = %d, %v, %q", n, err, p[:10])
	}
	end := int64(100 + len(data))
	if n, err := f.ReadAt(p[:10], end-4); n != 4 || err != io.EOF || string(p[:4]) != "6789" {
		t.Errorf("ReadAt across the end = %d, %v, %q; want 4, io.EOF", n, err, p[:4])
	}
	if n, err := f.ReadAt(p[:10], end+10); n != 0 || err != io.EOF {
		t.Errorf("ReadAt past the end = %d, %v; want 0, io.EOF", n, err)
	}
	ro, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer ro.Close()
	var pe *os.PathError
	if _, err := (osFile{ro}).WriteAt(data[:1], 0); !errors.As(err, &pe) || pe.Op != "write" || pe.Path != ro.Name() {
		t.Errorf("WriteAt to a read-only descriptor: %v, want an *os.PathError of write on %s", err, ro.Name())
	}
}
