package spool_test

import (
	"flag"
	"os"
	"testing"

	"github.com/spoolkit/spool"
	"go.uber.org/goleak"
)

// long runs the soaks and sweeps at full size. The README's test command
// (go test -race ./...) runs them at a size that keeps the whole command
// under 3 minutes on 2 busy cores; CI runs them again with -long
// (.ci/run). -short makes them smaller still.
var long = flag.Bool("long", false, "run soaks, stress tests and sweeps at full size (as CI does)")

// sized returns the size of a soak or sweep parameter for this run: long
// with -long, short with -short, and normal otherwise.
func sized(short, normal, full int) int {
	switch {
	case *long:
		return full
	case testing.Short():
		return short
	}
	return normal
}

// TestMain fails the run if any test leaves a goroutine behind: every
// goroutine spool starts is stopped by Manager.Close, so any leak is a bug.
// Where os.TempDir() is a tmpfs (the default /tmp of Debian 13, Fedora and
// Arch), it points TMPDIR at the disk-backed directory spool itself would
// use, so that the Managers the tests create in t.TempDir() are accepted.
func TestMain(m *testing.M) {
	if dir, err := spool.DefaultTempDir(); err == nil && dir != os.TempDir() {
		os.Setenv("TMPDIR", dir)
	}
	goleak.VerifyTestMain(m)
}
