package spool

import (
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// A budget from the environment.
//
// A fixed Options.MemoryBudget is wrong for a program that runs in
// containers of different sizes: too small wastes the container, too
// large gets the process killed by the kernel's OOM killer before spool
// ever spills. MemoryLimit finds the limit the process actually runs
// under, and MemoryLimitFraction turns it into a budget that leaves the
// rest for the program's other memory (Go's heap overhead, goroutine
// stacks, buffers outside spool).

// MemoryLimit returns the memory limit the process runs under, in bytes,
// and where it came from, for logs: the smallest of
//   - the cgroup memory limit (Linux): for cgroup v2, memory.max of the
//     process's cgroup and of each of its ancestors up to the root of the
//     cgroup file system the process sees, as a parent's limit binds its
//     children too; for cgroup v1, memory.limit_in_bytes of the memory
//     controller's cgroup and of its ancestors. A v1 memory controller takes
//     precedence over a v2 hierarchy (the hybrid layout of systemd), as
//     the memory controller can only be in one of them. "max", and v1's
//     9223372036854771712, mean no limit;
//   - the runtime's soft memory limit, GOMEMLIMIT or as last set by
//     debug.SetMemoryLimit, unless it is math.MaxInt64 (none).
//
// source is "cgroup v2 " or "cgroup v1 " followed by the file the limit was
// read from (such as "cgroup v2 /sys/fs/cgroup/app.slice/memory.max"), or
// "GOMEMLIMIT". On a tie the cgroup is reported.
//
// It returns ErrNoMemoryLimit if there is no limit: outside a container
// with no GOMEMLIMIT, and always outside Linux without GOMEMLIMIT. It
// never substitutes the machine's RAM. A cgroup file it cannot read is
// returned as an error wrapping the *fs.PathError; one it cannot parse,
// as an error naming the file and wrapping strconv.ErrSyntax (or
// strconv.ErrRange for a number out of range). A missing cgroup file
// system or file is not an error: it means no limit there.
//
// It reads the files anew at each call, so it sees a limit changed since
// the last call.
func MemoryLimit() (limit int64, source string, err error) {
	limit, source, err = cgroupLimit()
	return withRuntimeLimit(limit, source, err, debug.SetMemoryLimit(-1))
}

// MemoryLimitFraction returns fraction (0 < fraction <= 1) of MemoryLimit,
// rounded down, for Options.MemoryBudget: with a fraction of 0.25, a
// container limited to 2 GiB gets a budget of 512 MiB and leaves the rest
// for everything else the process holds. It returns an error wrapping
// ErrInvalidOptions for a fraction outside (0, 1] (or NaN), and the errors
// of MemoryLimit, ErrNoMemoryLimit among them: outside a container and
// without GOMEMLIMIT there is nothing to take a fraction of, and the
// caller chooses the budget:
//
//	budget, err := spool.MemoryLimitFraction(0.25)
//	if errors.Is(err, spool.ErrNoMemoryLimit) {
//		budget = 256 << 20 // not in a container: a budget of our own
//	} else if err != nil {
//		return err
//	}
//	m, err := spool.NewManager(spool.Options{MemoryBudget: budget})
//
// The result is at least 1, so that it never reads as the 0 of
// Options.MemoryBudget (which means DefaultMemoryBudget): a limit too
// small for a budget makes NewManager fail, not pick 64 MiB.
//
// Most of the budget's memory is mapped outside Go's heap, where
// GOMEMLIMIT does not reach (see "Where the budget's memory lives" in the
// package documentation). Where the limit is the cgroup's, the budget and
// the heap share it; where GOMEMLIMIT is set for the whole process, lower
// it by the budget (debug.SetMemoryLimit) so that the two together stay
// within it. With Options.MemoryLimitRefresh the budget is taken from
// the limit again at each refresh: if that limit is GOMEMLIMIT, so lowered,
// the budget follows it down (a fraction of the lowered limit); size
// GOMEMLIMIT once, from the budget first set, or take the budget from the
// cgroup's limit.
func MemoryLimitFraction(fraction float64) (int64, error) {
	if !(fraction > 0 && fraction <= 1) {
		return 0, fmt.Errorf("%w: memory limit fraction %v is not in (0, 1]", ErrInvalidOptions, fraction)
	}
	limit, _, err := MemoryLimit()
	if err != nil {
		return 0, err
	}
	return fractionOf(limit, fraction), nil
}

// withRuntimeLimit combines the cgroup limit (limit and source, or err,
// ErrNoMemoryLimit if there is none) with the runtime's memory limit rt
// (math.MaxInt64 if there is none), as MemoryLimit documents. An error
// reading the cgroup limit wins over GOMEMLIMIT: the cgroup limit might be
// the lower one.
func withRuntimeLimit(limit int64, source string, err error, rt int64) (int64, string, error) {
	cgroup := err == nil
	if err != nil && !errors.Is(err, ErrNoMemoryLimit) {
		return 0, "", err
	}
	if rt != math.MaxInt64 && (!cgroup || rt < limit) {
		return rt, "GOMEMLIMIT", nil
	}
	if !cgroup {
		return 0, "", ErrNoMemoryLimit
	}
	return limit, source, nil
}

// fractionOf returns fraction (in (0, 1]) of limit, rounded down, at least
// 1 and at most limit (float64(limit) may round up past limit).
func fractionOf(limit int64, fraction float64) int64 {
	f := float64(limit) * fraction
	if f >= float64(limit) {
		return max(limit, 1)
	}
	return max(min(int64(f), limit), 1) // f < float64(limit) <= 2^63: no overflow
}

// limitBudget returns the budget Options.MemoryLimitFraction f asks for:
// f of MemoryLimit, at least cs (a budget must hold a chunk), or fallback
// if there is no limit. An error reading the limit is returned.
func limitBudget(f float64, cs, fallback int64) (int64, error) {
	n, err := MemoryLimitFraction(f)
	switch {
	case errors.Is(err, ErrNoMemoryLimit):
		return fallback, nil
	case err != nil:
		return 0, err
	}
	return max(n, cs), nil
}

// limitWatcher applies Options.MemoryLimitFraction of the memory limit to
// the budget every Options.MemoryLimitRefresh (Manager.watchLimit), on a
// goroutine of its own that Manager.Close stops.
type limitWatcher struct {
	done    chan struct{} // closed by stop
	once    sync.Once
	wg      sync.WaitGroup
	calling atomic.Bool // set while SetMemoryBudget runs, which may call OnSpill
}

// watchLimit starts the Manager's limit watcher.
func (m *Manager) watchLimit() {
	w := &limitWatcher{done: make(chan struct{})}
	m.watcher = w
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(m.opts.MemoryLimitRefresh)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-t.C:
			}
			m.refreshLimit(w)
		}
	}()
}

// refreshLimit reads the memory limit and applies it to the budget if it
// changed.
func (m *Manager) refreshLimit(w *limitWatcher) {
	n, err := MemoryLimitFraction(m.opts.MemoryLimitFraction)
	if err != nil {
		if !errors.Is(err, ErrNoMemoryLimit) && m.opts.Logger != nil {
			m.opts.Logger.Warn("spool: reading the memory limit", "error", err)
		}
		return // no limit now: keep the budget
	}
	n = max(n, m.cs)
	if n == m.budget.size.Load() && m.budget.owing() == 0 {
		return
	}
	w.calling.Store(true)
	err = m.SetMemoryBudget(n)
	w.calling.Store(false)
	if err != nil && !errors.Is(err, ErrClosed) && m.opts.Logger != nil {
		m.opts.Logger.Warn("spool: applying the memory limit", "budget", n, "error", err)
	}
}

// stop stops the watcher, and waits for it unless it is running
// SetMemoryBudget, whose OnSpill callbacks may be what called stop (by
// Manager.Close); it then ends on its own, SetMemoryBudget failing with
// ErrClosed.
func (w *limitWatcher) stop() {
	if w == nil {
		return
	}
	w.once.Do(func() { close(w.done) })
	if !w.calling.Load() {
		w.wg.Wait()
	}
}
