package main

import (
	"os"
	"testing"

	"github.com/spoolkit/spool"
)

// TestMain points TMPDIR at the disk-backed directory spool would spill to
// where os.TempDir() is a tmpfs, so that the Managers the tests create in
// t.TempDir() are accepted.
func TestMain(m *testing.M) {
	if dir, err := spool.DefaultTempDir(); err == nil && dir != os.TempDir() {
		os.Setenv("TMPDIR", dir)
	}
	os.Exit(m.Run())
}
