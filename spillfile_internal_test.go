package spool

import (
	"os"
	"testing"
)

// TestCreateNamed checks the fallback used where O_TMPFILE is missing: the
// file works, is mode 0600, and has no name left in the directory.
func TestCreateNamed(t *testing.T) {
	dir := t.TempDir()
	f, err := createNamed(dir, "x-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
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
	f := sf.(*os.File)
	defer f.Close()
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
	if af, err := openAnonymous(dir); err != nil {
		t.Logf("anonymous files not supported here (%v); the named fallback was used", err)
	} else {
		af.Close()
	}
}
