package main

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolkit/spool"
)

// The shrink scenario: the uploads workload (workload.go) against spool
// alone, one Manager with a budget of cfg.ShrinkBudget, whose budget
// Manager.SetMemoryBudget shrinks to cfg.ShrinkTo once the clients have
// written a fraction cfg.ShrinkAt of the workload's bytes (half-way
// through its time: counted in uploads done, half of them are the small
// ones, done in the first tenth), while the clients go on writing. A
// goroutine waits for that moment, calls SetMemoryBudget, and from the
// moment it returns until the last upload is done reads
// Stats().MemoryInUse in a tight loop (runtime.Gosched between reads, no
// ticker), keeping the largest value and the number of reads. The target:
// MemoryInUse never above the new budget from the return on, which is
// what SetMemoryBudget promises when it returns nil. When it returns
// ErrOverBudget instead, MemoryInUse may stay above the new budget until
// releases have paid off the difference, but only falls: the loop also
// records when it first read a value within the budget, the largest after
// that, and any read above the budget larger than the one before it.
// Every upload is read back and checksummed, as in the uploads scenario.
// Another goroutine records MemoryInUse every shrinkTick until the
// shrink, for the plot (the loop records it after); the child samples its
// RSS as the uploads scenario does (Result.RSS), on the same clock
// (workloadStart), so that the report can compare the peak RSS before the
// shrink with that after it.

// shrinkTick is how often MemoryInUse is recorded for the plot, before
// the shrink and (from the tight loop) after it.
const shrinkTick = 5 * time.Millisecond

// shrinkVariants is the one implementation of the shrink scenario.
var shrinkVariants = []variant{{Name: spoolImpl, Label: "spool"}}

func (cfg Config) validateShrink() error {
	switch {
	case cfg.ShrinkBudget < spool.DefaultChunkSize || cfg.ShrinkTo < spool.DefaultChunkSize:
		return fmt.Errorf("-shrink-budget and -shrink-to must be at least %s", formatSize(spool.DefaultChunkSize))
	case !(cfg.ShrinkAt > 0 && cfg.ShrinkAt <= 1):
		return fmt.Errorf("bad -shrink-at %g: want a fraction of the uploads, > 0 and <= 1", cfg.ShrinkAt)
	}
	return nil
}

// ShrinkResult is what the child of the shrink scenario measures. Times
// are seconds since the workload started, on the clock of Result.RSS.
type ShrinkResult struct {
	Budget int64 `json:"budget"` // the budget the Manager started with
	To     int64 `json:"to"`     // the budget SetMemoryBudget set
	// At is the bytes the clients had to have written for
	// SetMemoryBudget to be called, Written those they had written when
	// it was, and After the uploads done by then, of Uploads.
	At      int64 `json:"at"`
	Written int64 `json:"written"`
	After   int   `json:"after"`
	Uploads int   `json:"uploads"`

	Called      float64 `json:"called"`        // when SetMemoryBudget was called
	Returned    float64 `json:"returned"`      // when it returned
	End         float64 `json:"end"`           // when the last upload was done
	Err         string  `json:"err,omitempty"` // what it returned; "" for nil
	OverBudget  bool    `json:"over_budget"`   // errors.Is(err, spool.ErrOverBudget)
	InUseBefore int64   `json:"in_use_before"` // MemoryInUse just before the call
	InUseAfter  int64   `json:"in_use_after"`  // MemoryInUse just after it returned
	PeakBefore  int64   `json:"peak_before"`   // Stats().PeakMemoryInUse just before the call
	// Call is what the Manager's counters moved by over the call (its
	// evictions and those of the clients' writes meanwhile).
	Call ShrinkCall `json:"call"`

	// The tight loop, from the return to the end: the reads of
	// MemoryInUse it made, the largest value it read and when; when it
	// first read a value within the new budget (-1: never) and the
	// largest after that; and the reads above the budget that were larger
	// than the read before.
	Samples     int64   `json:"samples"`
	MaxInUse    int64   `json:"max_in_use"`
	MaxAt       float64 `json:"max_at"`
	FitAt       float64 `json:"fit_at"`
	MaxAfterFit int64   `json:"max_after_fit"`
	Rises       int64   `json:"rises"`

	// Timeline is MemoryInUse over the run, every shrinkTick or so.
	Timeline []InUseSample `json:"timeline,omitempty"`
	// Final is the Manager's Stats after the last upload.
	Final spool.Stats `json:"final"`
}

// ShrinkCall is what a Manager's counters moved by over a call of
// SetMemoryBudget.
type ShrinkCall struct {
	Evictions     int64 `json:"evictions"`       // Stats().Evictions: buffers whose chunks moved
	SpilledBytes  int64 `json:"spilled_bytes"`   // Stats().SpilledBytes
	SkippedBusy   int64 `json:"skipped_busy"`    // Stats().SkippedBusy: victims whose TryLock failed
	BuffersOnDisk int   `json:"buffers_on_disk"` // after the call
	Buffers       int   `json:"buffers"`         // after the call
}

// An InUseSample is Stats().MemoryInUse at a time.
type InUseSample struct {
	Seconds float64 `json:"t"`
	InUse   int64   `json:"in_use"`
}

// Duration is how long SetMemoryBudget took.
func (s *ShrinkResult) Duration() time.Duration {
	return time.Duration((s.Returned - s.Called) * float64(time.Second))
}

// Held reports whether MemoryInUse stayed at most the new budget in every
// read from the return on.
func (s *ShrinkResult) Held() bool { return s.Samples > 0 && s.MaxInUse <= s.To }

// HeldOnceFit reports whether MemoryInUse only fell while above the new
// budget and stayed within it once it got there, in every read from the
// return on: what SetMemoryBudget promises after ErrOverBudget.
func (s *ShrinkResult) HeldOnceFit() bool {
	return s.Samples > 0 && s.Rises == 0 && (s.FitAt < 0 || s.MaxAfterFit <= s.To)
}

// shrinkPoint is the bytes the clients of a shrink run have written when
// it calls SetMemoryBudget: the fraction at of total, at least 1.
func shrinkPoint(at float64, total int64) int64 {
	return min(total, max(1, int64(math.Ceil(at*float64(total)))))
}

// runShrink is the run function of the shrink scenario.
func runShrink(cfg Config, job Job) (Result, error) {
	if job.Impl != spoolImpl {
		return Result{}, fmt.Errorf("unknown shrink implementation %q", job.Impl)
	}
	epoch := workloadStart
	if epoch.IsZero() {
		epoch = time.Now()
	}
	since := func() float64 { return time.Since(epoch).Seconds() }
	w := newWorkload(cfg.Seed, cfg.Total, cfg.MinSize, cfg.MaxSize)
	cfg.Budget = cfg.ShrinkBudget
	store, err := openSpool(cfg)
	if err != nil {
		return Result{}, fmt.Errorf("open spool: %w", err)
	}
	m := store.(*spoolStore).m
	sr := &ShrinkResult{Budget: cfg.ShrinkBudget, To: cfg.ShrinkTo, At: shrinkPoint(cfg.ShrinkAt, w.Total), Uploads: len(w.Uploads), FitAt: -1}

	var (
		st       = new(uploadStats)
		written  atomic.Int64
		half     = make(chan struct{}) // closed when written reaches sr.At
		finished = make(chan struct{}) // the last upload is done
		wg       sync.WaitGroup
		timeline []InUseSample // of the ticker, before the shrink
		after    []InUseSample // of the tight loop
	)
	st.onWrite = func(n int) {
		if k := written.Add(int64(n)); k >= sr.At && k-int64(n) < sr.At {
			close(half) // by the one Write that crossed sr.At
		}
	}
	// The ticker: MemoryInUse for the plot, until the shrink.
	wg.Go(func() {
		t := time.NewTicker(shrinkTick)
		defer t.Stop()
		for {
			timeline = append(timeline, InUseSample{since(), m.Stats().MemoryInUse})
			select {
			case <-t.C:
			case <-half:
				return
			case <-finished:
				return
			}
		}
	})
	// The shrink, then the tight loop.
	wg.Go(func() {
		select {
		case <-half:
		case <-finished:
			return
		}
		before := m.Stats()
		sr.InUseBefore, sr.PeakBefore = before.MemoryInUse, before.PeakMemoryInUse
		sr.Written, sr.After = written.Load(), int(st.uploads.Load())
		sr.Called = since()
		over, err := setMemoryBudget(m, cfg.ShrinkTo)
		sr.Returned = since()
		if err != nil {
			sr.Err, sr.OverBudget = err.Error(), over
		}
		a := m.Stats()
		sr.Call = ShrinkCall{Evictions: a.Evictions - before.Evictions, SpilledBytes: a.SpilledBytes - before.SpilledBytes,
			SkippedBusy: a.SkippedBusy - before.SkippedBusy, BuffersOnDisk: a.BuffersOnDisk, Buffers: a.Buffers}
		next, prev := sr.Returned, int64(0)
		for first := true; ; first = false {
			v := m.Stats().MemoryInUse
			sr.Samples++
			if first {
				sr.InUseAfter = v
			}
			if v > sr.MaxInUse || first {
				sr.MaxInUse, sr.MaxAt = v, since()
			}
			switch {
			case v <= sr.To && sr.FitAt < 0:
				sr.FitAt = since()
			case sr.FitAt >= 0:
				sr.MaxAfterFit = max(sr.MaxAfterFit, v)
			case !first && v > prev:
				sr.Rises++
			}
			prev = v
			if now := since(); now >= next {
				after = append(after, InUseSample{now, v})
				next = now + shrinkTick.Seconds()
			}
			select {
			case <-finished:
				return
			default:
			}
			runtime.Gosched()
		}
	})

	wall := runUploadsOn(store, w, cfg.Clients, cfg.Piece, st)
	sr.End = since()
	close(finished)
	wg.Wait()
	sr.Timeline = append(timeline, after...)
	slices.SortFunc(sr.Timeline, func(a, b InUseSample) int { return cmp.Compare(a.Seconds, b.Seconds) })
	sr.Final = m.Stats()
	ss := store.Stats()
	if err := store.Close(); err != nil {
		st.fail("close spool: %v", err)
	}
	res := st.result("shrink", spoolImpl, shrinkVariants[0].Label, cfg.Clients, w, wall, ss)
	res.Shrink = sr
	return res, nil
}

// setMemoryBudget calls m.SetMemoryBudget(n) and reports whether its
// error, if any, is ErrOverBudget. It is the bench's only use of the
// elastic budget.
func setMemoryBudget(m *spool.Manager, n int64) (overBudget bool, err error) {
	err = m.SetMemoryBudget(n)
	return errors.Is(err, spool.ErrOverBudget), err
}

// shrinkProgress summarizes a shrink result for the progress line.
func shrinkProgress(r Result) string {
	s := r.Shrink
	if s == nil {
		return fmt.Sprintf("%.2f s", r.WallSeconds)
	}
	return fmt.Sprintf("%.2f s, SetMemoryBudget in %s, MemoryInUse after it at most %s", r.WallSeconds, s.Duration().Round(time.Microsecond), formatSize(s.MaxInUse))
}
