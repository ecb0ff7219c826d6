package spool_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind. spool starts
// no goroutines of its own, so any leak is a bug.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
