package main

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolkit/spool"
)

// The diskwait scenario (issue 14): with a disk budget smaller than the
// uploads in flight, do uploads wait for room instead of failing? The
// uploads workload (workload.go: cfg.Clients clients, the same seeded
// uploads, cfg.Piece-byte pieces with a runtime.Gosched after each) runs
// against one Manager with the memory budget cfg.Budget and the disk
// budget cfg.DiskWaitBudget, in two variants, each in a child of its own:
//
//   - reserve: as wait, and each attempt first reserves the upload's
//     size with Buffer.ReserveDisk (as a server would its request's
//     ContentLength), waiting in line for it before it writes;
//   - wait: each attempt at an upload writes into a buffer from
//     Manager.NewBufferContext, whose context ends after
//     cfg.DiskWaitDeadline: a write short of disk waits in line for room;
//   - nowait: each writes into a buffer from Manager.NewBuffer, as
//     before NewBufferContext existed: a write short of disk fails at once
//     with ErrDiskBudget.
//
// An attempt whose Write fails (ErrDiskBudget in nowait; in wait, the
// refusal that breaks a deadlock of waiters holding disk, or the
// deadline) closes its buffer and, after cfg.DiskWaitBackoff, the client
// tries the upload again from its first byte, as an HTTP client does after
// a 507, up to cfg.DiskWaitRetries times; then it gives the upload up.
// Failed attempts are counted by cause. Every completed upload is read
// back and checked against its CRC-32C, as in the uploads scenario, and
// closed.
//
// A goroutine reads Stats() every diskwaitTick: the most writes waiting
// at once (DiskWaiters) and the most disk in use (DiskInUse, which must
// never pass DiskBudget). The clients keep the most bytes in flight at
// once: the full sizes of the uploads begun (first attempt started) and
// not yet done (completed or given up), the demand the budgets face, and
// the bytes written into buffers not yet closed, what the Manager held.

// diskwaitTick is how often the sampler reads Stats().
const diskwaitTick = time.Millisecond

// The variants of the diskwait scenario.
const (
	diskwaitReserve = "reserve"
	diskwaitWait    = "wait"
	diskwaitNoWait  = "nowait"
)

var diskwaitVariants = []variant{
	{Name: diskwaitReserve, Label: "reserve (NewBufferContext, ReserveDisk)"},
	{Name: diskwaitWait, Label: "wait (NewBufferContext)"},
	{Name: diskwaitNoWait, Label: "nowait (NewBuffer)"},
}

// diskwaitMinBudget is the least -diskwait-budget: room for a few blocks
// (a wait asks for a chunk and a granule).
const diskwaitMinBudget = 4 * spool.DefaultChunkSize

func (cfg Config) validateDiskWait() error {
	switch {
	case cfg.DiskWaitBudget < diskwaitMinBudget:
		return fmt.Errorf("-diskwait-budget must be at least %s", formatSize(diskwaitMinBudget))
	case cfg.DiskWaitDeadline <= 0:
		return errors.New("-diskwait-deadline must be positive")
	case cfg.DiskWaitRetries < 0:
		return errors.New("-diskwait-retries must not be negative")
	case cfg.DiskWaitBackoff < 0:
		return errors.New("-diskwait-backoff must not be negative")
	}
	return nil
}

// DiskWaitResult is what the child of a diskwait variant measures.
type DiskWaitResult struct {
	Wait         bool          `json:"wait"`          // buffers from NewBufferContext, else NewBuffer
	Reserve      bool          `json:"reserve"`       // ReserveDisk(size) before the writes
	Reservations Latency       `json:"reservations"`  // how long the ReserveDisk calls took (waited)
	DiskBudget   int64         `json:"disk_budget"`   // Options.DiskBudget
	Deadline     time.Duration `json:"deadline"`      // of each attempt's context (wait)
	MaxRetries   int           `json:"max_retries"`   // attempts after the first, per upload
	Backoff      time.Duration `json:"backoff"`       // pause before each retry
	Intact       int           `json:"intact"`        // completed uploads read back with their checksum
	FirstTry     int           `json:"first_try"`     // uploads completed by their first attempt
	Attempts     int64         `json:"attempts"`      // attempts at uploads, all told
	Retries      int64         `json:"retries"`       // attempts after a failed one
	GaveUp       int           `json:"gave_up"`       // uploads whose every attempt failed
	GaveUpBytes  int64         `json:"gave_up_bytes"` // their sizes
	WastedBytes  int64         `json:"wasted_bytes"`  // bytes written by failed attempts
	FailedWrites Latency       `json:"failed_writes"` // the Writes that failed an attempt
	// Failed attempts, by the cause of their failed Write: ErrDiskBudget
	// (in wait, a refusal to break a deadlock), the context's deadline
	// (in wait; the error wraps ErrDiskBudget too), anything else (with
	// the errors of reading back; those are failures of the run). First*
	// is the first error of each.
	Refused       int64  `json:"refused"`
	DeadlineHit   int64  `json:"deadline_hit"`
	Other         int64  `json:"other"`
	FirstRefused  string `json:"first_refused,omitempty"`
	FirstDeadline string `json:"first_deadline,omitempty"`

	// The most at once: the full sizes of the uploads begun and not done,
	// and their number; the bytes written into buffers not yet closed.
	PeakInFlight        int64 `json:"peak_in_flight"`
	PeakInFlightUploads int64 `json:"peak_in_flight_uploads"`
	PeakHeld            int64 `json:"peak_held"`

	// The sampler: its reads of Stats(), and the most DiskWaiters and
	// DiskInUse it read.
	Samples       int64 `json:"samples"`
	PeakWaiters   int   `json:"peak_waiters"`
	PeakDiskInUse int64 `json:"peak_disk_in_use"`

	// Rollovers that failed (OnSpill), at the disk budget and otherwise:
	// the first are what a budget does (the data stays in memory), the
	// others failures of the run.
	SpillBudgetErrors int64 `json:"spill_budget_errors"`
	SpillOtherErrors  int64 `json:"spill_other_errors"`

	// Final is the Manager's Stats after the last upload.
	Final spool.Stats `json:"final"`
}

// DiskWaitTime is the total time writes waited for disk budget.
func (d *DiskWaitResult) DiskWaitTime() time.Duration { return d.Final.DiskWaitTime }

// Failed is the number of attempts that failed.
func (d *DiskWaitResult) Failed() int64 { return d.Refused + d.DeadlineHit + d.Other }

// WithinBudget reports whether DiskInUse was within DiskBudget in every
// read of the sampler, and at the end.
func (d *DiskWaitResult) WithinBudget() bool {
	return d.Samples > 0 && d.PeakDiskInUse <= d.DiskBudget && d.Final.DiskInUse <= d.DiskBudget
}

// diskwaitRun is the state of a diskwait child's clients.
type diskwaitRun struct {
	m        *spool.Manager
	wait     bool
	reserve  bool // ReserveDisk before writing (wait too)
	deadline time.Duration
	retries  int
	backoff  time.Duration
	piece    int

	st       uploadStats // uploads, bytes, checksumErrors, errors, latencies
	intact   atomic.Int64
	firstTry atomic.Int64
	attempts atomic.Int64
	retried  atomic.Int64
	gaveUp   atomic.Int64
	gaveUpB  atomic.Int64
	wasted   atomic.Int64
	refused  atomic.Int64
	deadHit  atomic.Int64
	other    atomic.Int64
	firstRef atomic.Pointer[string]
	firstDL  atomic.Pointer[string]
	inFlight gauge // full sizes of the uploads begun and not done
	inFlN    gauge // their number
	held     gauge // bytes written into open buffers

	mu       sync.Mutex
	failed   []time.Duration // latencies of the Writes (and ReserveDisk calls) that failed
	reserved []time.Duration // latencies of the ReserveDisk calls
}

// runDiskWait is the run function of the diskwait scenario.
func runDiskWait(cfg Config, job Job) (Result, error) {
	var label string
	for _, v := range diskwaitVariants {
		if v.Name == job.Impl {
			label = v.Label
		}
	}
	if label == "" {
		return Result{}, fmt.Errorf("unknown diskwait variant %q", job.Impl)
	}
	w := newWorkload(cfg.Seed, cfg.Total, cfg.MinSize, cfg.MaxSize)
	var spillBudget, spillOther atomic.Int64
	var firstSpill atomic.Pointer[string]
	m, err := spool.NewManager(spool.Options{
		MemoryBudget: cfg.Budget,
		DiskBudget:   cfg.DiskWaitBudget,
		TempDir:      cfg.TempDir,
		OnSpill: func(e spool.SpillEvent) {
			switch {
			case e.Err == nil:
			case errors.Is(e.Err, spool.ErrDiskBudget):
				spillBudget.Add(1)
			default:
				spillOther.Add(1)
				msg := fmt.Sprintf("rollover of buffer %d: %v", e.Buffer, e.Err)
				firstSpill.CompareAndSwap(nil, &msg)
			}
		},
	})
	if err != nil {
		return Result{}, fmt.Errorf("open spool: %w", err)
	}
	r := &diskwaitRun{m: m, wait: job.Impl != diskwaitNoWait, reserve: job.Impl == diskwaitReserve, deadline: cfg.DiskWaitDeadline, retries: cfg.DiskWaitRetries,
		backoff: cfg.DiskWaitBackoff, piece: cfg.Piece}
	dr := &DiskWaitResult{Wait: r.wait, Reserve: r.reserve, DiskBudget: cfg.DiskWaitBudget, Deadline: cfg.DiskWaitDeadline, MaxRetries: cfg.DiskWaitRetries,
		Backoff: cfg.DiskWaitBackoff}

	finished := make(chan struct{})
	var sampler sync.WaitGroup
	sample := func() {
		s := m.Stats()
		dr.Samples++
		dr.PeakWaiters = max(dr.PeakWaiters, s.DiskWaiters)
		dr.PeakDiskInUse = max(dr.PeakDiskInUse, s.DiskInUse)
	}
	sampler.Go(func() {
		t := time.NewTicker(diskwaitTick)
		defer t.Stop()
		for {
			sample()
			select {
			case <-t.C:
			case <-finished:
				return
			}
		}
	})

	var (
		next    atomic.Int64
		clients sync.WaitGroup
	)
	start := time.Now()
	for range cfg.Clients {
		clients.Go(func() {
			buf := make([]byte, cfg.Piece)
			var lat []time.Duration
			defer func() {
				r.st.mu.Lock()
				r.st.latencies = append(r.st.latencies, lat...)
				r.st.mu.Unlock()
			}()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(w.Uploads)) {
					return
				}
				lat = r.upload(w.Uploads[i], int(i), buf, lat)
			}
		})
	}
	clients.Wait()
	wall := time.Since(start)
	close(finished)
	sampler.Wait()
	sample()

	dr.Final = m.Stats()
	dr.Intact, dr.FirstTry = int(r.intact.Load()), int(r.firstTry.Load())
	dr.Attempts, dr.Retries = r.attempts.Load(), r.retried.Load()
	dr.GaveUp, dr.GaveUpBytes, dr.WastedBytes = int(r.gaveUp.Load()), r.gaveUpB.Load(), r.wasted.Load()
	dr.Refused, dr.DeadlineHit, dr.Other = r.refused.Load(), r.deadHit.Load(), r.other.Load()
	if p := r.firstRef.Load(); p != nil {
		dr.FirstRefused = *p
	}
	if p := r.firstDL.Load(); p != nil {
		dr.FirstDeadline = *p
	}
	dr.FailedWrites = summarize(r.failed)
	dr.Reservations = summarize(r.reserved)
	dr.PeakInFlight, dr.PeakInFlightUploads, dr.PeakHeld = r.inFlight.most.Load(), r.inFlN.most.Load(), r.held.most.Load()
	dr.SpillBudgetErrors, dr.SpillOtherErrors = spillBudget.Load(), spillOther.Load()
	if p := firstSpill.Load(); p != nil {
		r.st.fail("%s", *p)
	}
	if err := m.Close(); err != nil {
		r.st.fail("close the Manager: %v", err)
	}
	res := r.st.result("diskwait", job.Impl, label, cfg.Clients, w, wall, spoolStoreStats(dr.Final))
	res.DiskWait = dr
	return res, nil
}

// upload receives upload u: it makes attempts until one completes or
// r.retries retries have failed. It appends the latency of each Write to
// lat.
func (r *diskwaitRun) upload(u Upload, idx int, buf []byte, lat []time.Duration) []time.Duration {
	r.inFlight.add(u.Size)
	r.inFlN.add(1)
	defer func() {
		r.inFlight.add(-u.Size)
		r.inFlN.add(-1)
	}()
	for try := 0; ; try++ {
		if try > 0 {
			r.retried.Add(1)
			if r.backoff > 0 {
				time.Sleep(r.backoff)
			}
		}
		var (
			written int64
			err     error
		)
		lat, written, err = r.attempt(u, idx, buf, lat)
		if err == nil {
			if try == 0 {
				r.firstTry.Add(1)
			}
			return lat
		}
		r.wasted.Add(written)
		msg := fmt.Sprintf("upload %d, attempt %d: %v", idx, try+1, err)
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			r.deadHit.Add(1)
			r.firstDL.CompareAndSwap(nil, &msg)
		case errors.Is(err, spool.ErrDiskBudget):
			r.refused.Add(1)
			r.firstRef.CompareAndSwap(nil, &msg)
		default:
			r.other.Add(1)
			r.st.fail("%s", msg)
		}
		if try == r.retries {
			r.gaveUp.Add(1)
			r.gaveUpB.Add(u.Size)
			return lat
		}
	}
}

// attempt makes one attempt at upload u: into a new buffer, written in
// pieces, read back and checked, closed. It returns the bytes it wrote
// and the error of the attempt, if it failed: the upload is to be tried
// again.
func (r *diskwaitRun) attempt(u Upload, idx int, buf []byte, lat []time.Duration) ([]time.Duration, int64, error) {
	r.attempts.Add(1)
	var (
		b   *spool.Buffer
		err error
	)
	if r.wait {
		ctx, cancel := context.WithTimeout(context.Background(), r.deadline)
		defer cancel() // after the Close below
		b, err = r.m.NewBufferContext(ctx)
	} else {
		b, err = r.m.NewBuffer()
	}
	if err != nil {
		return lat, 0, fmt.Errorf("new buffer: %w", err)
	}
	if r.reserve {
		t0 := time.Now()
		err := b.ReserveDisk(u.Size)
		d := time.Since(t0)
		r.mu.Lock()
		r.reserved = append(r.reserved, d)
		if err != nil {
			r.failed = append(r.failed, d)
		}
		r.mu.Unlock()
		if err != nil {
			b.Close()
			return lat, 0, fmt.Errorf("reserve %d bytes: %w", u.Size, err)
		}
	}
	var written int64
	defer func() {
		r.held.add(-written)
		if cerr := b.Close(); cerr != nil {
			r.st.fail("upload %d: close: %v", idx, cerr)
		}
	}()
	g := newGen(u.Seed)
	h := crc32.New(castagnoli)
	var want uint32
	for written < u.Size {
		p := buf[:min(int64(len(buf)), u.Size-written)]
		g.fill(p)
		want = crc32.Update(want, castagnoli, p)
		t0 := time.Now()
		n, err := b.Write(p)
		d := time.Since(t0)
		lat = append(lat, d)
		written += int64(n)
		r.held.add(int64(n))
		if err != nil {
			r.mu.Lock()
			r.failed = append(r.failed, d)
			r.mu.Unlock()
			return lat, written, fmt.Errorf("write at %d: %w", written, err)
		}
		runtime.Gosched()
	}
	if _, err := b.Seek(0, io.SeekStart); err != nil {
		return lat, written, fmt.Errorf("read back: %w", err)
	}
	n, err := io.Copy(h, b)
	if err != nil {
		return lat, written, fmt.Errorf("read back: %w", err)
	}
	if n != u.Size || h.Sum32() != want {
		r.st.checksumErrors.Add(1)
		msg := fmt.Sprintf("upload %d: read back %d bytes with crc %08x, want %d bytes with crc %08x", idx, n, h.Sum32(), u.Size, want)
		r.st.firstErr.CompareAndSwap(nil, &msg)
	} else {
		r.intact.Add(1)
	}
	r.st.uploads.Add(1)
	r.st.bytes.Add(u.Size)
	return lat, written, nil
}

// diskwaitProgress summarizes a diskwait result for the progress line.
func diskwaitProgress(r Result) string {
	d := r.DiskWait
	if d == nil {
		return fmt.Sprintf("%.2f s", r.WallSeconds)
	}
	return fmt.Sprintf("%.2f s, %d of %d uploads, %d failed attempts", r.WallSeconds, r.Uploads, r.WantUploads, d.Failed())
}
