package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/trace"
	"sort"
	"strings"
	"time"

	xtrace "golang.org/x/exp/trace"
)

// Execution traces (-trace DIR). Each child writes DIR/NAME.trace, a
// runtime/trace execution trace of its workload (NAME as jobFile), and the
// scenarios that time their writes (uploads, shrink, diskwait) mark each
// Write with two trace logs (markWrite). The parent reads the trace back
// (finishTrace) and splits the time of the child's slowest writes, those
// at or above the p99.9 of the writes the trace saw, by what their
// goroutine did meanwhile (tailOf): it ran; it waited on a lock, on the
// garbage collector, or in a system call, at a function of the code under
// test; or it was ready to run and waited for a CPU, after one of those.
//
// Why: with 200 goroutines taking turns on 2 cores, a Write that stops for
// any reason waits behind the others before it runs again, and that wait
// is the tail. A mutex profile says which locks were contended, not which
// stops made the slowest writes slow; the trace says both. Tracing costs
// time of its own (about 10% here), so compare traced runs with each
// other.

// writeLog is the trace log category of markWrite.
const writeLog = "bench.write"

// markWrite logs the beginning ("b") or the end ("e") of a Write, for
// tailOf. Without a trace in progress it costs a few nanoseconds.
func markWrite(what string) { trace.Log(context.Background(), writeLog, what) }

// startTrace starts the execution trace of a child into dir, if dir is not
// "", and returns the function that stops it.
func startTrace(dir, name string) (func() error, error) {
	if dir == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(filepath.Join(dir, name+".trace"))
	if err != nil {
		return nil, err
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		trace.Stop()
		return f.Close()
	}, nil
}

// TraceTail is what tailOf found in a trace.
type TraceTail struct {
	Writes    int        `json:"writes"`    // writes marked in the trace
	Slow      int        `json:"slow"`      // writes at or above Threshold
	Threshold float64    `json:"threshold"` // ms: the p99.9 of the writes marked
	Seconds   float64    `json:"seconds"`   // the time of the slow writes, in all
	Parts     []TailPart `json:"parts"`     // where it went, most first
	// LockWait is the time the slow writes waited on locks, and Holders
	// what the goroutines that then woke them (the lock's holders, which
	// released it) did meanwhile, most first: a holder that waited for a
	// CPU with the lock held makes every waiter wait as long.
	LockWait float64    `json:"lock_wait,omitempty"`
	Holders  []TailPart `json:"holders,omitempty"`
}

// A TailPart is the time the slow writes spent in one state.
type TailPart struct {
	What    string  `json:"what"`    // such as "waited for a CPU, after: waited on a lock at spool.(*segment).alloc"
	Seconds float64 `json:"seconds"` // summed over the slow writes
	Writes  int     `json:"writes"`  // slow writes that spent at least a quarter of their time so
}

// tailParts is the number of parts a TraceTail keeps.
const tailParts = 6

// finishTrace runs in the parent after each child that printed a Result,
// with -trace: it reads the child's trace into res.Tail, or records why it
// could not. A trace without marked writes leaves res.Tail nil.
func finishTrace(cfg Config, job Job, res *Result) {
	if cfg.Trace == "" {
		return
	}
	f, err := os.Open(filepath.Join(cfg.Trace, jobFile(cfg.Scenario, job)+".trace"))
	if err != nil {
		res.TailError = err.Error()
		return
	}
	defer f.Close()
	t, err := tailOf(f)
	switch {
	case err != nil:
		res.TailError = err.Error()
	case t.Writes > 0:
		res.Tail = &t
	}
}

// tailOf reads an execution trace and returns the split of its slowest
// marked writes.
func tailOf(r io.Reader) (TraceTail, error) {
	tr, err := xtrace.NewReader(r)
	if err != nil {
		return TraceTail{}, fmt.Errorf("read trace: %w", err)
	}
	type inWrite struct {
		start xtrace.Time
		state string // what the goroutine is doing, a TailPart.What
		since xtrace.Time
		spent map[string]time.Duration
		waits []lockBlock
	}
	type done struct {
		d     time.Duration
		spent map[string]time.Duration
		waits []lockBlock
	}
	open := map[xtrace.GoID]*inWrite{}
	var writes []done
	// Every goroutine's states, for what the holders did (holdersOf).
	hist := map[xtrace.GoID][]goSpan{}
	now := map[xtrace.GoID]goSpan{}
	var last xtrace.Time
	for {
		ev, err := tr.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return TraceTail{}, fmt.Errorf("read trace: %w", err)
		}
		last = ev.Time()
		switch ev.Kind() {
		case xtrace.EventLog:
			l := ev.Log()
			if l.Category != writeLog {
				continue
			}
			g := ev.Goroutine()
			if l.Message == "b" {
				open[g] = &inWrite{start: ev.Time(), state: "ran", since: ev.Time(), spent: map[string]time.Duration{}}
				continue
			}
			w := open[g]
			if w == nil {
				continue
			}
			delete(open, g)
			w.spent[w.state] += ev.Time().Sub(w.since)
			writes = append(writes, done{ev.Time().Sub(w.start), w.spent, w.waits})
		case xtrace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != xtrace.ResourceGoroutine {
				continue
			}
			id := st.Resource.Goroutine()
			_, to := st.Goroutine()
			if c, ok := now[id]; ok {
				c.to = ev.Time()
				hist[id] = append(hist[id], c)
			}
			now[id] = goSpan{from: ev.Time(), what: holderState(to, st.Reason, st.Stack, ev.Stack())}
			w := open[id]
			if w == nil {
				continue
			}
			if strings.HasPrefix(w.state, lockWaitPrefix) && to == xtrace.GoRunnable {
				w.waits = append(w.waits, lockBlock{from: w.since, to: ev.Time(), by: ev.Goroutine()})
			}
			w.spent[w.state] += ev.Time().Sub(w.since)
			w.since = ev.Time()
			w.state = stateOf(to, st.Reason, st.Stack, ev.Stack(), w.state)
		}
	}
	for id, c := range now { // the states the trace ended in
		c.to = last
		hist[id] = append(hist[id], c)
	}
	t := TraceTail{Writes: len(writes)}
	if len(writes) == 0 {
		return t, nil
	}
	sort.Slice(writes, func(i, j int) bool { return writes[i].d < writes[j].d })
	threshold := writes[len(writes)*999/1000].d
	t.Threshold = float64(threshold) / float64(time.Millisecond)
	sum := map[string]time.Duration{}
	most := map[string]int{}
	held := map[string]time.Duration{}
	heldMost := map[string]int{}
	var waited time.Duration
	for _, w := range writes {
		if w.d < threshold {
			continue
		}
		t.Slow++
		t.Seconds += w.d.Seconds()
		for what, d := range w.spent {
			sum[what] += d
			if 4*d >= w.d {
				most[what]++
			}
		}
		mine, total := holdersOf(w.waits, hist)
		waited += total
		for what, d := range mine {
			held[what] += d
			if 4*d >= total {
				heldMost[what]++
			}
		}
	}
	t.LockWait = waited.Seconds()
	for what, d := range held {
		t.Holders = append(t.Holders, TailPart{What: what, Seconds: d.Seconds(), Writes: heldMost[what]})
	}
	sortParts(t.Holders)
	if len(t.Holders) > tailParts {
		t.Holders = t.Holders[:tailParts]
	}
	for what, d := range sum {
		t.Parts = append(t.Parts, TailPart{What: what, Seconds: d.Seconds(), Writes: most[what]})
	}
	sortParts(t.Parts)
	if len(t.Parts) > tailParts {
		t.Parts = t.Parts[:tailParts]
	}
	return t, nil
}

// sortParts sorts parts by time, most first.
func sortParts(parts []TailPart) {
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].Seconds != parts[j].Seconds {
			return parts[i].Seconds > parts[j].Seconds
		}
		return parts[i].What < parts[j].What
	})
}

// A goSpan is a stretch of time a goroutine spent in one state (holderState).
type goSpan struct {
	from, to xtrace.Time
	what     string
}

// A lockBlock is a wait of a write on a lock, from when its goroutine
// blocked to when the goroutine by made it runnable: for a mutex, the one
// that released it.
type lockBlock struct {
	from, to xtrace.Time
	by       xtrace.GoID
}

// lockWaitPrefix starts the state stateOf gives a wait on a lock.
const lockWaitPrefix = "waited on a lock at "

// holdersOf returns what the goroutines that ended waits did during them,
// by state, from their spans in hist, and the waits' time in all. A wait
// ended by no goroutine (or by its own) is counted in the total only.
func holdersOf(waits []lockBlock, hist map[xtrace.GoID][]goSpan) (map[string]time.Duration, time.Duration) {
	got := map[string]time.Duration{}
	var total time.Duration
	for _, lw := range waits {
		total += lw.to.Sub(lw.from)
		if lw.by == xtrace.NoGoroutine {
			continue
		}
		spans := hist[lw.by]
		i := sort.Search(len(spans), func(i int) bool { return spans[i].to > lw.from })
		for ; i < len(spans) && spans[i].from < lw.to; i++ {
			from, to := max(spans[i].from, lw.from), min(spans[i].to, lw.to)
			got[spans[i].what] += to.Sub(from)
		}
	}
	return got, total
}

// holderState names the state a goroutine goes to, as stateOf does, but
// without what it did before it waited for a CPU.
func holderState(to xtrace.GoState, reason string, own, evStack xtrace.Stack) string {
	if to == xtrace.GoRunnable {
		return "waited for a CPU"
	}
	return stateOf(to, reason, own, evStack, "")
}

// stateOf names the state a goroutine in a write goes to: to, for reason,
// with the goroutine's stack (own) or, for a system call, the event's
// (evStack); prev is the state it leaves.
func stateOf(to xtrace.GoState, reason string, own, evStack xtrace.Stack, prev string) string {
	switch to {
	case xtrace.GoRunning:
		return "ran"
	case xtrace.GoRunnable:
		if reason == "preempted" {
			return "waited for a CPU, after: preempted"
		}
		return "waited for a CPU, after: " + strings.TrimPrefix(prev, "waited for a CPU, after: ")
	case xtrace.GoSyscall:
		return "system call at " + where(evStack)
	case xtrace.GoWaiting:
		switch {
		case strings.Contains(reason, "GC") || inCollector(own):
			return "waited on the garbage collector at " + where(own)
		case strings.HasPrefix(reason, "sync"):
			return lockWaitPrefix + where(own)
		}
		return "waited (" + reason + ") at " + where(own)
	}
	return to.String()
}

// inCollector reports whether a stack waits inside the garbage collector:
// an allocation helping a collection (mallocgc, gcAssistAlloc) waits for
// its end on a runtime semaphore, which the trace gives the reason "sync",
// as it gives a sync.Mutex.
func inCollector(s xtrace.Stack) bool {
	for f := range s.Frames() {
		if f.Func == "runtime.mallocgc" || strings.HasPrefix(f.Func, "runtime.gc") {
			return true
		}
	}
	return false
}

// lockFrames are spool's lock functions that where passes over, as it
// passes over package sync: a wait in them is charged to their caller.
var lockFrames = map[string]bool{
	"github.com/spoolkit/spool.(*spinMutex).lock":    true,
	"github.com/spoolkit/spool.(*spinMutex).relock":  true,
	"github.com/spoolkit/spool.(*segment).lock":      true,
	"github.com/spoolkit/spool.(*segment).relock":    true,
	"github.com/spoolkit/spool.(*budget).semTry":     true,
	"github.com/spoolkit/spool.(*budget).semRelease": true,
}

// where names the function of a stack that a tail is charged to: the first
// frame outside the runtime, sync and internal packages (the code that
// made the call), and the first frame of package spool beneath it, if
// another.
func where(s xtrace.Stack) string {
	var first, sp string
	for f := range s.Frames() {
		fn := f.Func
		if lockFrames[fn] {
			continue // spool's own mutex: the caller is what matters
		}
		if first == "" && !strings.HasPrefix(fn, "runtime") && !strings.HasPrefix(fn, "sync.") &&
			!strings.HasPrefix(fn, "internal/") && !strings.HasPrefix(fn, "syscall.") && !strings.HasPrefix(fn, "golang.org/x/sys/") {
			first = fn
		}
		if sp == "" && strings.HasPrefix(fn, "github.com/spoolkit/spool.") {
			sp = fn
		}
	}
	switch {
	case first == "" && sp == "":
		return "?"
	case first == "" || first == sp:
		return shortFunc(sp)
	case sp == "":
		return shortFunc(first)
	}
	return shortFunc(first) + " in " + shortFunc(sp)
}
