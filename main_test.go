package spool_test

import (
	"flag"
	"testing"

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

// TestMain fails the run if any test leaves a goroutine behind. spool starts
// no goroutines of its own, so any leak is a bug.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
