package main

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"time"

	"github.com/spoolkit/spool"
)

// The churn scenario: does the disk space spool holds follow its live
// spilled bytes when buffers come and go? One Manager (budget cfg.Budget)
// spills cfg.ChurnBuffers buffers of cfg.ChurnSize bytes each: each is
// written in one Write and rolled over at once (Buffer.Rollover), so that
// all of them are on disk. Then cfg.ChurnClose of them, chosen at random
// (seed cfg.Seed), are closed, and cfg.ChurnNew new buffers are spilled the
// same way: the churn. Then every buffer still open is read back and
// checked against its CRC-32C (a reused extent must never show another
// buffer's bytes), and closed; then the Manager is closed.
//
// After each step the child measures the blocks the file system has
// allocated to spool's spill files: the sum of st_blocks × 512 of the
// files it holds open in the Manager's TempDir that have no name
// (spillFilesIn, through /proc/self/fd; the bench cannot reach the
// library's files otherwise), next to Stats().DiskLive (the bytes of data
// in the arena's extents), DiskInUse (the disk space the spill files may
// hold, counted in granules) and SpillFiles (the segment files open). The
// target: after the churn, the blocks allocated are at most churnTarget ×
// DiskLive. Freed space is reused first, and given back to the file system
// (punched out with fallocate, or cut off the files' ends) once it passes
// max(DiskLive/8, 1 MiB), so a file's blocks should follow the data in it,
// not the most it ever held.

// churnTarget is the most disk space, over the live spilled bytes, that
// the spill files may hold after the churn.
const churnTarget = 1.25

// churnVariants: spool is all there is to measure.
var churnVariants = []variant{{Name: spoolImpl, Label: "spool"}}

func (cfg Config) validateChurn() error {
	switch {
	case cfg.ChurnBuffers <= 0 || cfg.ChurnBuffers > 10_000_000:
		return errors.New("-churn-buffers must be from 1 to 10,000,000")
	case cfg.ChurnClose < 0 || cfg.ChurnClose > cfg.ChurnBuffers:
		return errors.New("-churn-close must be from 0 to -churn-buffers")
	case cfg.ChurnNew < 0 || cfg.ChurnNew > 10_000_000:
		return errors.New("-churn-new must be from 0 to 10,000,000")
	case cfg.ChurnSize <= 0 || cfg.ChurnSize > 1<<30:
		return errors.New("-churn-size must be from 1 byte to 1 GiB")
	}
	return nil
}

// ChurnResult is what the child of the churn scenario measures.
type ChurnResult struct {
	Buffers int    `json:"buffers"` // spilled first
	Closed  int    `json:"closed"`  // of those, closed
	New     int    `json:"new"`     // spilled after the closes
	Size    int64  `json:"size"`    // bytes each
	TempDir string `json:"tempdir"` // the Manager's TempDir, where the files were looked for
	// Points: after the first spills, after the closes, after the churn
	// (the target), after closing every buffer, after Manager.Close.
	Points []ChurnPoint `json:"points"`
	// Why the files could not be measured, if they could not.
	MeasureError string `json:"measure_error,omitempty"`
}

// ChurnPoint is the state of the spill arena at one step.
type ChurnPoint struct {
	When    string  `json:"when"`
	Seconds float64 `json:"t"` // since the start of the workload
	// Stats of the Manager.
	Buffers       int   `json:"buffers"`
	BuffersOnDisk int   `json:"buffers_on_disk"`
	SpillFiles    int   `json:"spill_files"`
	DiskInUse     int64 `json:"disk_in_use"`
	DiskLive      int64 `json:"disk_live"`
	// What the file system says of the spill files found: their number,
	// the sum of their sizes (st_size), and the blocks allocated to them
	// (st_blocks × 512); -1 if they could not be looked for.
	Files     int   `json:"files"`
	FileSize  int64 `json:"file_size"`
	Allocated int64 `json:"allocated"`
}

// Ratio is the blocks allocated over the live spilled bytes, or NaN.
func (p ChurnPoint) Ratio() float64 { return ratio(p.Allocated, p.DiskLive) }

// The steps of ChurnResult.Points, by name.
const (
	churnAfterSpill   = "after the spills"
	churnAfterClose   = "after the closes"
	churnAfterChurn   = "after the churn"
	churnAfterAll     = "after closing every buffer"
	churnAfterManager = "after Manager.Close"
)

// point returns the point named when, or nil.
func (c *ChurnResult) point(when string) *ChurnPoint {
	for i := range c.Points {
		if c.Points[i].When == when {
			return &c.Points[i]
		}
	}
	return nil
}

// runChurn is the run function of the churn scenario.
func runChurn(cfg Config, job Job) (Result, error) {
	if job.Impl != spoolImpl {
		return Result{}, fmt.Errorf("unknown churn implementation %q", job.Impl)
	}
	m, err := spool.NewManager(spool.Options{MemoryBudget: cfg.Budget, TempDir: cfg.TempDir})
	if err != nil {
		return Result{}, err
	}
	cr := &ChurnResult{Buffers: cfg.ChurnBuffers, Closed: cfg.ChurnClose, New: cfg.ChurnNew, Size: cfg.ChurnSize, TempDir: m.TempDir()}
	n := cfg.ChurnBuffers + cfg.ChurnNew
	res := Result{Scenario: "churn", Impl: job.Impl, Label: job.Label, Clients: 1, WantUploads: n, WantBytes: int64(n) * cfg.ChurnSize, Churn: cr}
	fail := func(format string, args ...any) {
		res.Errors++
		if res.FirstError == "" {
			res.FirstError = fmt.Sprintf(format, args...)
		}
	}
	start := time.Now()
	measure := func(when string) {
		st := m.Stats()
		p := ChurnPoint{When: when, Seconds: time.Since(start).Seconds(), Buffers: st.Buffers, BuffersOnDisk: st.BuffersOnDisk,
			SpillFiles: st.SpillFiles, DiskInUse: st.DiskInUse, DiskLive: st.DiskLive}
		files, size, alloc, err := spillFilesIn(cr.TempDir)
		if err != nil {
			p.Files, p.FileSize, p.Allocated = -1, -1, -1
			cr.MeasureError = err.Error()
		} else {
			p.Files, p.FileSize, p.Allocated = files, size, alloc
		}
		cr.Points = append(cr.Points, p)
	}

	bufs := make([]*spool.Buffer, n) // nil: not spilled, or closed
	sums := make([]uint32, n)
	p := make([]byte, cfg.ChurnSize)
	spill := func(i int) {
		b, err := m.NewBuffer()
		if err != nil {
			fail("buffer %d: new: %v", i, err)
			return
		}
		g := newGen(splitmix64(cfg.Seed ^ 0xc4a2 ^ uint64(i+1)*0x9e3779b97f4a7c15))
		g.fill(p)
		sums[i] = crc32.Checksum(p, castagnoli)
		_, err = b.Write(p)
		if err == nil {
			err = b.Rollover()
		}
		if err == nil && !b.OnDisk() {
			err = errors.New("not on disk after Rollover")
		}
		if err != nil {
			fail("buffer %d: %v", i, err)
			if cerr := b.Close(); cerr != nil {
				fail("buffer %d: close: %v", i, cerr)
			}
			return
		}
		bufs[i] = b
		res.Uploads++
		res.Bytes += cfg.ChurnSize
	}
	closeBuf := func(i int) {
		if bufs[i] == nil {
			return
		}
		if err := bufs[i].Close(); err != nil {
			fail("buffer %d: close: %v", i, err)
		}
		bufs[i] = nil
	}

	for i := range cfg.ChurnBuffers {
		spill(i)
	}
	measure(churnAfterSpill)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xc4a2))
	for _, i := range rng.Perm(cfg.ChurnBuffers)[:cfg.ChurnClose] {
		closeBuf(i)
	}
	measure(churnAfterClose)
	for i := cfg.ChurnBuffers; i < n; i++ {
		spill(i)
	}
	measure(churnAfterChurn)
	res.WallSeconds = time.Since(start).Seconds()

	// Every buffer still open reads back what was written into it.
	got := make([]byte, cfg.ChurnSize)
	for i, b := range bufs {
		if b == nil {
			continue
		}
		k, err := b.ReadAt(got, 0)
		if errors.Is(err, io.EOF) && int64(k) == cfg.ChurnSize {
			err = nil
		}
		switch {
		case err != nil:
			fail("buffer %d: read back: %v", i, err)
		case crc32.Checksum(got, castagnoli) != sums[i]:
			res.ChecksumErrors++
			if res.FirstError == "" {
				res.FirstError = fmt.Sprintf("buffer %d: read back wrong bytes", i)
			}
		}
		closeBuf(i)
	}
	measure(churnAfterAll)
	st := m.Stats()
	res.Store = spoolStoreStats(st)
	if err := m.Close(); err != nil {
		fail("close the Manager: %v", err)
	}
	measure(churnAfterManager)
	return res, nil
}

func churnProgress(r Result) string {
	c := r.Churn
	if c == nil {
		return ""
	}
	s := fmt.Sprintf("%.1f s", r.WallSeconds)
	if p := c.point(churnAfterChurn); p != nil && p.Allocated >= 0 {
		s += fmt.Sprintf(", %s allocated for %s live", formatSize(p.Allocated), formatSize(p.DiskLive))
	}
	return s
}
