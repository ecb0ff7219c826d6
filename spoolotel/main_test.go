package spoolotel_test

import (
	"os"
	"testing"

	"github.com/spoolkit/spool"
	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind. Where
// os.TempDir() is a tmpfs, it points TMPDIR at the disk-backed directory
// spool itself would use, so that the Managers the tests create in
// t.TempDir() (and the Example's, in the default directory) are accepted.
func TestMain(m *testing.M) {
	if dir, err := spool.DefaultTempDir(); err == nil && dir != os.TempDir() {
		os.Setenv("TMPDIR", dir)
	}
	goleak.VerifyTestMain(m)
}
