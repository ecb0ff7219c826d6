//go:build linux

package spool_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolkit/spool"
)

// crashChildEnv, when set to a directory, makes TestCrashLeavesNoFiles act
// as the child process: it spills buffers into that directory and waits to
// be killed.
const crashChildEnv = "SPOOL_CRASH_CHILD"

// TestCrashLeavesNoFiles runs the test binary again as a child process that
// rolls several buffers over to disk in a fresh TempDir, kills it with
// SIGKILL while the spill files are open, and checks that nothing is left
// in TempDir: spill files are anonymous (or unlinked at once), so no
// cleanup code needs to run for them to vanish.
func TestCrashLeavesNoFiles(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir) // never returns
		return
	}
	t.Run("anonymous", func(t *testing.T) { testCrash(t, false) })
	t.Run("named", func(t *testing.T) { testCrash(t, true) })
}

// crashNamedEnv, set in the child's environment, makes it use named spill
// files (the fallback where O_TMPFILE is missing).
const crashNamedEnv = "SPOOL_CRASH_NAMED"

func testCrash(t *testing.T, named bool) {
	start := time.Now()
	dir := t.TempDir()
	defer watchdog(t, 2*time.Minute)()

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashLeavesNoFiles$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	if named {
		cmd.Env = append(cmd.Env, crashNamedEnv+"=1")
	}
	var stderr bytes.Buffer // read only after Wait
	cmd.Stderr = &stderr
	// The child blocks reading its stdin: if this process dies without
	// killing it, the pipe closes and the child exits on its own.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid

	// Read stdout until the "ready" line, then drain it to EOF, which comes
	// when the child dies.
	ready := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "ready") {
				ready <- line
				break
			}
		}
		close(ready)
		_, _ = io.Copy(io.Discard, stdout)
	}()

	// From here on, every way out kills and reaps the child.
	waited := false
	var waitErr error
	reap := func() {
		if waited {
			return
		}
		waited = true
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-drained // all reads from the pipe are done before Wait
		waitErr = cmd.Wait()
	}
	defer reap()

	var line string
	select {
	case l, ok := <-ready:
		if !ok {
			reap()
			t.Fatalf("child exited without reporting ready (%v); stderr:\n%s", waitErr, stderr.String())
		}
		line = l
	case <-time.After(time.Minute):
		reap()
		t.Fatalf("child did not report ready within a minute; stderr:\n%s", stderr.String())
	}
	files, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "ready")))
	if err != nil {
		t.Fatalf("child said %q, want \"ready <SpillFiles>\"", line)
	}

	// The child is alive and blocked: its spill files are open. Count its
	// descriptors that point into dir.
	spills, anon, links := childSpillFDs(t, pid, dir)
	t.Logf("child %d: SpillFiles %d; %d descriptors into TempDir (%d anonymous): %s", pid, files, spills, anon, strings.Join(links, ", "))
	if spills != 3 {
		t.Errorf("child has %d spill files open in %s, want its MaxSpillFiles, 3", spills, dir)
	}
	if spills != files {
		t.Errorf("child has %d spill files open, but its Stats.SpillFiles = %d", spills, files)
	}
	switch {
	case named && anon != 0:
		t.Errorf("named mode: %d of %d spill files are anonymous", anon, spills)
	case !named && anon != spills:
		t.Logf("note: %d of %d spill files are not O_TMPFILE files (named fallback in use here)", spills-anon, spills)
	}
	// Even while they are open, the spill files have no names in dir.
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("while the child runs: TempDir holds %d entries (%v), want none", len(ents), err)
	}

	reap()
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) {
		t.Fatalf("Wait = %v, want the child killed by SIGKILL; stderr:\n%s", waitErr, stderr.String())
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL; stderr:\n%s", ee, stderr.String())
	}

	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("after SIGKILL: TempDir holds %d entries, want none: %v", len(ents), names)
	}
	t.Logf("child killed (%v); TempDir holds %d entries; took %v", ee, len(ents), time.Since(start).Round(time.Millisecond))
}

// childSpillFDs lists /proc/<pid>/fd and returns how many descriptors point
// into dir, how many of those are O_TMPFILE files (shown as
// "<dir>/#<inode> (deleted)"), and their link targets.
func childSpillFDs(t *testing.T, pid int, dir string) (n, anon int, links []string) {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatalf("cannot list the child's descriptors: %v", err)
	}
	prefix := dir + string(filepath.Separator)
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if !strings.HasPrefix(target, prefix) {
			continue
		}
		n++
		links = append(links, e.Name()+"->"+strings.TrimPrefix(target, prefix))
		if strings.HasPrefix(target, prefix+"#") && strings.HasSuffix(target, " (deleted)") {
			anon++
		}
	}
	return n, anon, links
}

// crashChild is the child side of TestCrashLeavesNoFiles: it fills buffers
// under a small budget in dir until at least three are on disk, in the
// arena's three segment files, checks their content, prints
// "ready <SpillFiles>", and blocks until it is killed. It never returns.
func crashChild(dir string) {
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "crash child: "+format+"\n", args...)
		os.Exit(1)
	}
	// A safety net in case the parent neither kills us nor dies.
	time.AfterFunc(2*time.Minute, func() { fail("not killed within 2m") })

	m, err := spool.NewManager(spool.Options{MemoryBudget: 8 * 4096, ChunkSize: 4096, TempDir: dir, MaxSpillFiles: 3})
	if err != nil {
		fail("NewManager: %v", err)
	}
	if os.Getenv(crashNamedEnv) != "" {
		spool.ForceNamedSpillFiles(m)
	}
	bufs := make([]*spool.Buffer, 8)
	data := make([][]byte, len(bufs))
	for i := range bufs {
		if bufs[i], err = m.NewBuffer(); err != nil {
			fail("NewBuffer: %v", err)
		}
		data[i] = randBytes(uint64(i), 3*4096+100) // 4 chunks each, 32 in all
		if n, err := bufs[i].Write(data[i]); n != len(data[i]) || err != nil {
			fail("Write = %d, %v", n, err)
		}
	}
	for i, b := range bufs {
		got := make([]byte, len(data[i])+1)
		if n, err := b.ReadAt(got, 0); n != len(data[i]) || err != io.EOF || !bytes.Equal(got[:n], data[i]) {
			fail("buffer %d: ReadAt(all) = %d, %v; content differs", i, n, err)
		}
	}
	st := m.Stats()
	if st.BuffersOnDisk < 3 {
		fail("only %d buffers on disk: %+v", st.BuffersOnDisk, st)
	}
	fmt.Printf("ready %d\n", st.SpillFiles)
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent's end closes
	runtime.KeepAlive(bufs)              // no finalizer may close a spill file before the kill
	fail("stdin closed before SIGKILL (parent gone?)")
}
