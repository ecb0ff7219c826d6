package spool_test

import (
	"errors"
	"math"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/spoolkit/spool"
)

// setGOMEMLIMIT sets the runtime's memory limit for the test, restoring it
// afterwards, and skips the test if the limit spool reads then is not
// GOMEMLIMIT (a lower cgroup limit on this machine).
func setGOMEMLIMIT(t *testing.T, n int64) {
	t.Helper()
	old := debug.SetMemoryLimit(n)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	if _, src, err := spool.MemoryLimit(); err != nil || src != "GOMEMLIMIT" {
		t.Skipf("the memory limit here is not GOMEMLIMIT (%q, %v)", src, err)
	}
}

// TestMemoryLimitFractionOption: Options.MemoryLimitFraction sets the
// budget from the memory limit, and MemoryLimitRefresh follows the limit
// as it changes; Manager.Close stops the watcher (TestMain checks that no
// goroutine is left).
func TestMemoryLimitFractionOption(t *testing.T) {
	setGOMEMLIMIT(t, 8<<30)
	m, err := spool.NewManager(spool.Options{MemoryLimitFraction: 0.01, MemoryLimitRefresh: time.Second, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	limit := float64(8 << 30)
	want := int64(limit * 0.01)
	if got := m.Stats().MemoryBudget; got != want {
		t.Fatalf("budget %d, want 1%% of GOMEMLIMIT, %d", got, want)
	}
	b, _ := m.NewBuffer()
	data := randBytes(1, 60<<20)
	b.Write(data)
	// The limit halves: within a refresh or two the budget follows, and
	// the buffer's memory with it.
	debug.SetMemoryLimit(4 << 30)
	want /= 2
	deadline := time.Now().Add(time.Minute)
	for m.Stats().MemoryBudget != want {
		if time.Now().After(deadline) {
			t.Fatalf("budget %d a minute after the limit changed, want %d", m.Stats().MemoryBudget, want)
		}
		time.Sleep(20 * time.Millisecond) // the refresh runs once a second
	}
	for st := m.Stats(); st.MemoryInUse > want; st = m.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("MemoryInUse %d over the new budget %d", st.MemoryInUse, want)
		}
		time.Sleep(20 * time.Millisecond) // SetMemoryBudget is rolling the buffer over
	}
	wantContent(t, b, data)
}

// TestMemoryLimitOptionsInvalid: the limit options are checked by
// NewManager.
func TestMemoryLimitOptionsInvalid(t *testing.T) {
	for _, c := range []struct {
		opts spool.Options
		want string
	}{
		{spool.Options{MemoryLimitFraction: -0.5}, "MemoryLimitFraction"},
		{spool.Options{MemoryLimitFraction: 1.5}, "MemoryLimitFraction"},
		{spool.Options{MemoryLimitFraction: math.NaN()}, "MemoryLimitFraction"},
		{spool.Options{MemoryLimitFraction: 0.5, MemoryBudget: 1 << 20}, "both set"},
		{spool.Options{MemoryLimitRefresh: time.Minute}, "without MemoryLimitFraction"},
		{spool.Options{MemoryLimitFraction: 0.5, MemoryLimitRefresh: time.Millisecond}, "at least a second"},
		{spool.Options{MemoryLimitFraction: 0.5, MemoryLimitRefresh: -time.Second}, "at least a second"},
	} {
		m, err := spool.NewManager(c.opts)
		if err == nil {
			m.Close()
		}
		if !errors.Is(err, spool.ErrInvalidOptions) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewManager(%+v) = %v, want ErrInvalidOptions mentioning %q", c.opts, err, c.want)
		}
	}
}

// TestMemoryLimitFractionNoLimit: without a limit to find, the budget is
// DefaultMemoryBudget.
func TestMemoryLimitFractionNoLimit(t *testing.T) {
	old := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	if _, _, err := spool.MemoryLimit(); !errors.Is(err, spool.ErrNoMemoryLimit) {
		t.Skipf("this machine has a memory limit: %v", err)
	}
	m, err := spool.NewManager(spool.Options{MemoryLimitFraction: 0.25, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := m.Stats().MemoryBudget; got != spool.DefaultMemoryBudget {
		t.Errorf("budget %d with no memory limit, want DefaultMemoryBudget", got)
	}
}
