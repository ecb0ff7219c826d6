package spool_test

import (
	"errors"
	"fmt"
	"log"
	"math"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spoolkit/spool"
)

// TestMemoryLimitMachine: on whatever machine the test runs, MemoryLimit
// returns a positive limit with a source, or ErrNoMemoryLimit, and
// MemoryLimitFraction agrees with it.
func TestMemoryLimitMachine(t *testing.T) {
	limit, source, err := spool.MemoryLimit()
	switch {
	case errors.Is(err, spool.ErrNoMemoryLimit):
		t.Logf("no memory limit here")
		if limit != 0 || source != "" {
			t.Errorf("MemoryLimit = %d, %q, %v; want 0, \"\" with ErrNoMemoryLimit", limit, source, err)
		}
		if _, err := spool.MemoryLimitFraction(0.5); !errors.Is(err, spool.ErrNoMemoryLimit) {
			t.Errorf("MemoryLimitFraction(0.5) error = %v; want ErrNoMemoryLimit", err)
		}
	case err != nil:
		t.Fatalf("MemoryLimit: %v", err)
	default:
		t.Logf("memory limit %d bytes (%d MiB) from %s", limit, limit>>20, source)
		if limit <= 0 || !(strings.HasPrefix(source, "cgroup v") || source == "GOMEMLIMIT") {
			t.Errorf("MemoryLimit = %d, %q; want a positive limit and its source", limit, source)
		}
		// The limit could change between the calls; it does not on a test machine.
		if got, err := spool.MemoryLimitFraction(1); got != limit || err != nil {
			t.Errorf("MemoryLimitFraction(1) = %d, %v; want %d", got, err, limit)
		}
		want := max(limit/4, 1)
		got, err := spool.MemoryLimitFraction(0.25)
		if limit >= 1<<53 { // float64 rounds: only bounds
			want = got
		}
		if got != want || got < 1 || got > limit || err != nil {
			t.Errorf("MemoryLimitFraction(0.25) = %d, %v; want %d", got, err, want)
		}
	}
}

// TestMemoryLimitFractionInvalid: a fraction outside (0, 1] is an error
// wrapping ErrInvalidOptions, on any machine.
func TestMemoryLimitFractionInvalid(t *testing.T) {
	t.Parallel()
	for _, f := range []float64{0, math.Copysign(0, -1), -0.25, 1.0000001, 2, math.NaN(), math.Inf(1), math.Inf(-1)} {
		got, err := spool.MemoryLimitFraction(f)
		if got != 0 || !errors.Is(err, spool.ErrInvalidOptions) || errors.Is(err, spool.ErrNoMemoryLimit) {
			t.Errorf("MemoryLimitFraction(%v) = %d, %v; want ErrInvalidOptions", f, got, err)
		}
	}
}

// TestMemoryLimitGOMEMLIMIT sets the process's runtime memory limit (so it
// is not parallel, and restores the limit): below the machine's limit,
// MemoryLimit reports GOMEMLIMIT; with none, the cgroup limit or
// ErrNoMemoryLimit. The limits it sets are never below what the machine
// allows, so the garbage collector is not pressed meanwhile.
func TestMemoryLimitGOMEMLIMIT(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })

	debug.SetMemoryLimit(math.MaxInt64)
	cgLimit, cgSource, cgErr := spool.MemoryLimit()
	if cgErr != nil && !errors.Is(cgErr, spool.ErrNoMemoryLimit) {
		t.Fatalf("MemoryLimit: %v", cgErr)
	}
	if cgErr == nil && !strings.HasPrefix(cgSource, "cgroup v") {
		t.Errorf("MemoryLimit without GOMEMLIMIT = %d, %q; want a cgroup source", cgLimit, cgSource)
	}

	rt := int64(1 << 40)
	if cgErr == nil {
		rt = cgLimit - 1
	}
	debug.SetMemoryLimit(rt)
	limit, source, err := spool.MemoryLimit()
	if limit != rt || source != "GOMEMLIMIT" || err != nil {
		t.Errorf("MemoryLimit with GOMEMLIMIT=%d = %d, %q, %v; want %d, GOMEMLIMIT", rt, limit, source, err, rt)
	}

	if cgErr == nil {
		debug.SetMemoryLimit(cgLimit + 1)
		if limit, source, err := spool.MemoryLimit(); limit != cgLimit || source != cgSource || err != nil {
			t.Errorf("MemoryLimit with GOMEMLIMIT above the cgroup's = %d, %q, %v; want %d, %q", limit, source, err, cgLimit, cgSource)
		}
	}
}

// ExampleMemoryLimitFraction sizes the budget to a quarter of the memory
// limit of the container (or of GOMEMLIMIT), and falls back to a budget of
// its own where the process runs under no limit.
func ExampleMemoryLimitFraction() {
	budget, err := spool.MemoryLimitFraction(0.25)
	if errors.Is(err, spool.ErrNoMemoryLimit) {
		budget = 256 << 20 // no container limit, no GOMEMLIMIT: our own choice
	} else if err != nil {
		log.Fatal(err)
	}
	m, err := spool.NewManager(spool.Options{MemoryBudget: budget})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	fmt.Println("budget as chosen:", m.Stats().MemoryBudget == budget)
	// Output:
	// budget as chosen: true
}

// ExampleMemoryLimit logs the limit the process runs under and where it
// comes from.
func ExampleMemoryLimit() {
	limit, source, err := spool.MemoryLimit()
	switch {
	case errors.Is(err, spool.ErrNoMemoryLimit):
		log.Print("no memory limit")
	case err != nil:
		log.Fatal(err)
	default:
		log.Printf("memory limit: %d MiB (%s)", limit>>20, source)
	}
}
