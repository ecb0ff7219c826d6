//go:build unix

package spool_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/spoolkit/spool"
)

// fdChildEnv makes the test binary run arenaFDChild instead of the tests.
const fdChildEnv = "SPOOL_TEST_FD_CHILD"

func init() {
	if n := os.Getenv(fdChildEnv); n != "" {
		arenaFDChild(n)
	}
}

// TestArenaFileLimit: 100,000 buffers spilled at once, in a child process
// whose limit on open files is 256: the spill arena keeps at most
// 4 × GOMAXPROCS + 4 files open, and every buffer reads back.
func TestArenaFileLimit(t *testing.T) {
	n := sized(10000, 100000, 100000)
	if raceEnabled {
		n = min(n, 20000)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fdChildEnv+"="+strconv.Itoa(n), "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var files, onDisk int
	if _, err := fmt.Sscanf(string(out), "ok %d %d", &files, &onDisk); err != nil {
		t.Fatalf("child said %q", out)
	}
	t.Logf("%d buffers on disk in %d spill files, under an fd limit of 256", onDisk, files)
	if limit := 4*runtime.GOMAXPROCS(0) + 4; files > limit || onDisk != n {
		t.Errorf("%d buffers on disk (want %d) in %d spill files (want at most %d)", onDisk, n, files, limit)
	}
}

// arenaFDChild is the child side of TestArenaFileLimit. It never returns.
func arenaFDChild(arg string) {
	fail := func(format string, args ...any) {
		fmt.Printf("child: "+format+"\n", args...)
		os.Exit(1)
	}
	n, err := strconv.Atoi(arg)
	if err != nil {
		fail("%v", err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 256, Max: 256}); err != nil {
		fail("setrlimit: %v", err)
	}
	m, err := spool.NewManager(spool.Options{MemoryBudget: 1 << 20})
	if err != nil {
		fail("NewManager: %v", err)
	}
	bufs := make([]*spool.Buffer, n)
	for i := range bufs {
		b, err := m.NewBuffer()
		if err != nil {
			fail("NewBuffer %d: %v", i, err)
		}
		if _, err := b.Write([]byte(strings.Repeat(strconv.Itoa(i), 40))); err != nil {
			fail("Write %d: %v", i, err)
		}
		if err := b.Rollover(); err != nil {
			fail("Rollover %d: %v", i, err)
		}
		bufs[i] = b
	}
	p := make([]byte, 400)
	for i, b := range bufs {
		want := strings.Repeat(strconv.Itoa(i), 40)
		if k, err := b.ReadAt(p, 0); k != len(want) || err != io.EOF || string(p[:k]) != want {
			fail("buffer %d reads %q, %v", i, p[:k], err)
		}
	}
	st := m.Stats()
	fmt.Printf("ok %d %d\n", st.SpillFiles, st.BuffersOnDisk)
	m.Close()
	os.Exit(0)
}
