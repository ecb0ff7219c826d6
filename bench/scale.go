package main

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"
)

// The scale scenario: how the cost grows with the work. Each point holds N
// buffers at once: N buffers of cfg.ScaleBytes/N bytes each are written
// in cfg.Piece pieces, round robin over the buffers by scaleWorkers
// goroutines (at most N), so that all of them fill up together like N slow
// uploads; once every buffer is full they are read back, checksummed and
// closed. Every point holds about the same cfg.ScaleBytes at its peak,
// whatever N, so what changes from point to point is the number of
// buffers, not the bytes.
//
// Two sweeps: N over cfg.ScaleBuffers at the budget cfg.Budget, for spool
// and the multipart-style per-buffer spool (whose RAM bound is N × its
// threshold); and spool's budget over cfg.ScaleBudgets at N =
// cfg.ScaleLoad. Each point runs in its own child process.

// scaleWorkers bounds the goroutines that write a point's buffers: the
// buffers held at once are the variable, not the goroutines (whose stacks
// would otherwise grow with N, as would the piece each one writes from).
const scaleWorkers = 64

// The targets of the scale scenario: spool's throughput at the most
// buffers over that at the fewest, at least; and the share of spool's CPU
// spent creating and closing spill files at the most buffers, less than
// (with -profile).
const (
	scaleThroughputTarget   = 0.5
	scaleSpillFileCPUTarget = 0.05
)

// scaleVariants are the implementations of the scale scenario.
var scaleVariants = []string{spoolImpl, "multipart"}

func scaleVariantList() []variant {
	var vs []variant
	for _, n := range scaleVariants {
		im, _ := lookupImpl(n)
		vs = append(vs, variant{Name: im.Name, Label: im.Label})
	}
	return vs
}

func (cfg Config) validateScale() error {
	switch {
	case cfg.ScaleBytes <= 0:
		return errors.New("-scale-bytes must be positive")
	case len(cfg.ScaleBuffers) == 0:
		return errors.New("-scale-buffers needs at least one count")
	case cfg.ScaleLoad <= 0 || cfg.ScaleLoad > 1_000_000:
		return errors.New("-scale-load must be from 1 to 1,000,000")
	case cfg.ChildBuffers < 0 || cfg.ChildBudget < 0:
		return errors.New("-child-buffers and -child-budget must not be negative")
	}
	for _, n := range cfg.ScaleBuffers {
		if n <= 0 || n > 1_000_000 {
			return fmt.Errorf("bad -scale-buffers count %d: want 1 to 1,000,000", n)
		}
	}
	for _, b := range cfg.ScaleBudgets {
		if b < 1<<20 {
			return fmt.Errorf("bad -scale-budgets size %d: want at least 1 MiB", b)
		}
	}
	if cfg.Child != "" && cfg.Scenario == "scale" && (cfg.ChildBuffers == 0 || cfg.ChildBudget == 0) {
		return errors.New("a scale child needs -child-buffers and -child-budget")
	}
	return nil
}

// scaleJobs runs every implementation at every count of buffers, then
// spool at every budget of the budget sweep (but not twice the same point).
func scaleJobs(cfg Config, names []string) []Job {
	var jobs []Job
	has := func(impl string, n int, budget int64) bool {
		for _, j := range jobs {
			if j.Impl == impl && j.Buffers == n && j.Budget == budget {
				return true
			}
		}
		return false
	}
	for _, n := range cfg.ScaleBuffers {
		for _, name := range names {
			im, _ := lookupImpl(name)
			jobs = append(jobs, Job{Impl: name, Label: im.Label, Buffers: n, Budget: cfg.Budget})
		}
	}
	for _, name := range names {
		if name != spoolImpl {
			continue
		}
		im, _ := lookupImpl(name)
		for _, b := range cfg.ScaleBudgets {
			if !has(name, cfg.ScaleLoad, b) {
				jobs = append(jobs, Job{Impl: name, Label: im.Label, Buffers: cfg.ScaleLoad, Budget: b})
			}
		}
	}
	return jobs
}

// ScaleResult is what a child of the scale scenario measures.
type ScaleResult struct {
	Buffers      int     `json:"buffers"`     // held at once
	BufferSize   int64   `json:"buffer_size"` // bytes each
	Budget       int64   `json:"budget"`      // spool's budget
	Workers      int     `json:"workers"`
	WriteSeconds float64 `json:"write_seconds"` // until every buffer was full
	ReadSeconds  float64 `json:"read_seconds"`  // read back, checksum, close
	// With -profile, for spool: the CPU time of the child's profile spent
	// creating and closing spill files (spillFileStack), as the parent
	// read it (finishScale), or why it could not.
	SpillFileCPU *ProfileShare `json:"spill_file_cpu,omitempty"`
	ProfileError string        `json:"profile_error,omitempty"`
}

// finishScale is the finish function of the scale scenario: with
// -profile, it reads the CPU profile of a spool child and records the
// share of it spent creating and closing spill files.
func finishScale(cfg Config, job Job, res *Result) {
	if cfg.Profile == "" || job.Impl != spoolImpl || res.Scale == nil {
		return
	}
	share, err := readCPUShare(filepath.Join(cfg.Profile, jobFile(cfg.Scenario, job)+".cpu.pprof"), spillFileStack)
	if err != nil {
		res.Scale.ProfileError = err.Error()
		return
	}
	res.Scale.SpillFileCPU = &share
}

// runScale is the run function of the scale scenario: one point.
func runScale(cfg Config, job Job) (Result, error) {
	impl, ok := lookupImpl(job.Impl)
	if !ok || !hasVariant(scenario{impls: scaleVariantList()}, job.Impl) {
		return Result{}, fmt.Errorf("unknown scale implementation %q", job.Impl)
	}
	if job.Buffers <= 0 || job.Budget <= 0 {
		return Result{}, fmt.Errorf("scale point with %d buffers and a %d-byte budget", job.Buffers, job.Budget)
	}
	cfg.Budget = job.Budget
	n := job.Buffers
	size := max(cfg.ScaleBytes/int64(n), 1)
	store, err := impl.Open(cfg)
	if err != nil {
		return Result{}, fmt.Errorf("open %s: %w", impl.Name, err)
	}
	st, sr := holdBuffers(store, n, size, cfg.Piece, cfg.Seed)
	ss := store.Stats()
	if err := store.Close(); err != nil {
		st.fail("close %s: %v", impl.Name, err)
	}
	sr.Budget = job.Budget
	res := Result{
		Scenario:       "scale",
		Impl:           impl.Name,
		Label:          impl.Label,
		Clients:        sr.Workers,
		Uploads:        int(st.uploads.Load()),
		WantUploads:    n,
		Bytes:          st.bytes.Load(),
		WantBytes:      int64(n) * size,
		WallSeconds:    sr.WriteSeconds + sr.ReadSeconds,
		Store:          ss,
		ChecksumErrors: st.checksumErrors.Load(),
		Errors:         st.errors.Load(),
		Scale:          sr,
	}
	if p := st.firstErr.Load(); p != nil {
		res.FirstError = *p
	}
	return res, nil
}

// holdBuffers fills n buffers of store with size bytes each, round robin,
// until all are full at once, then reads each back, checks it and closes
// it.
func holdBuffers(store Store, n int, size int64, piece int, seed uint64) (*uploadStats, *ScaleResult) {
	var st uploadStats
	workers := min(n, scaleWorkers)
	sinks := make([]Sink, n)
	gens := make([]gen, n)
	sums := make([]uint32, n)
	for i := range gens {
		gens[i] = newGen(splitmix64(seed ^ 0x5ca1e ^ uint64(i+1)*0x9e3779b97f4a7c15))
	}
	failed := make([]bool, n)

	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			buf := make([]byte, piece)
			for off := int64(0); off < size; off += int64(piece) {
				p := buf[:min(int64(piece), size-off)]
				for i := w; i < n; i += workers {
					if failed[i] {
						continue
					}
					if sinks[i] == nil {
						s, err := store.New()
						if err != nil {
							st.fail("buffer %d: new: %v", i, err)
							failed[i] = true
							continue
						}
						sinks[i] = s
					}
					gens[i].fill(p)
					sums[i] = crc32.Update(sums[i], castagnoli, p)
					if _, err := sinks[i].Write(p); err != nil {
						st.fail("buffer %d: write at %d: %v", i, off, err)
						failed[i] = true
						continue
					}
					runtime.Gosched()
				}
			}
		})
	}
	wg.Wait()
	writeTime := time.Since(start)
	atPeak() // with -profile, the heap profile at the peak, not timed
	readStart := time.Now()
	for w := range workers {
		wg.Go(func() {
			h := crc32.New(castagnoli)
			for i := w; i < n; i += workers {
				s := sinks[i]
				if s == nil {
					continue
				}
				if !failed[i] {
					h.Reset()
					got, err := s.ReadBack(h)
					switch {
					case err != nil:
						st.fail("buffer %d: read back: %v", i, err)
					case got != size || h.Sum32() != sums[i]:
						st.checksumErrors.Add(1)
						msg := fmt.Sprintf("buffer %d: read back %d bytes with crc %08x, want %d bytes with crc %08x", i, got, h.Sum32(), size, sums[i])
						st.firstErr.CompareAndSwap(nil, &msg)
					default:
						st.uploads.Add(1)
						st.bytes.Add(size)
					}
				}
				if err := s.Close(); err != nil {
					st.fail("buffer %d: close: %v", i, err)
				}
				sinks[i] = nil
			}
		})
	}
	wg.Wait()
	return &st, &ScaleResult{
		Buffers:      n,
		BufferSize:   size,
		Workers:      workers,
		WriteSeconds: writeTime.Seconds(),
		ReadSeconds:  time.Since(readStart).Seconds(),
	}
}

func scaleProgress(r Result) string {
	return fmt.Sprintf("%.2f s, %.2f GB/s, peak RSS %s", r.WallSeconds, r.GBps(), rssCell(r))
}

// scalePoint returns the result of impl at n buffers and budget, or nil.
func scalePoint(rs []Result, impl string, n int, budget int64) *Result {
	for i := range rs {
		r := &rs[i]
		if r.Impl == impl && r.Scale != nil && r.Scale.Buffers == n && r.Scale.Budget == budget {
			return r
		}
	}
	return nil
}

// mib returns r's peak RSS above baseline in MiB, or NaN.
func mib(r *Result) float64 {
	if r == nil || r.PeakHWM <= 0 {
		return math.NaN()
	}
	return float64(r.PeakRSSAboveBaseline) / (1 << 20)
}

// printScaleReport prints both sweeps and the target.
func printScaleReport(w io.Writer, run Run) {
	cfg := run.Config
	fmt.Fprintf(w, "scenario scale: at each point N buffers of %s / N bytes each are filled round robin in %s pieces by min(N, %d) goroutines,\n",
		formatSize(cfg.ScaleBytes), formatSize(int64(cfg.Piece)), scaleWorkers)
	fmt.Fprintf(w, "all held at once, then read back, checksummed and closed; each point in its own child process. %s %s/%s, %d CPUs, GOMAXPROCS %d\n",
		run.GoVersion, run.GOOS, run.GOARCH, run.NumCPU, run.MaxProcs)
	pb, _ := lookupImpl("multipart")
	rss := func(r *Result) string {
		if r == nil {
			return "–"
		}
		return rssCell(*r)
	}
	gbps := func(r *Result) string {
		if r == nil {
			return "–"
		}
		return fmt.Sprintf("%.2f", r.GBps())
	}
	ratio := func(a, b float64) string {
		if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	gb := func(r *Result) float64 {
		if r == nil {
			return math.NaN()
		}
		return r.GBps()
	}

	fmt.Fprintf(w, "\nConcurrency: N buffers at a %s budget\n\n", formatSize(cfg.Budget))
	profiled := false
	for _, r := range run.Results {
		profiled = profiled || r.Scale != nil && (r.Scale.SpillFileCPU != nil || r.Scale.ProfileError != "")
	}
	header := []string{"buffers", "bytes each", "spool peak RSS", "spool GB/s", "spool spills", "spool spill files"}
	if profiled {
		header = append(header, "spool CPU in spill files")
	}
	header = append(header, pb.Label+" peak RSS", pb.Label+" GB/s", pb.Label+" files", "spool RSS ÷ peer", "spool GB/s ÷ peer")
	t := table{header: header}
	for _, n := range cfg.ScaleBuffers {
		s, p := scalePoint(run.Results, spoolImpl, n, cfg.Budget), scalePoint(run.Results, "multipart", n, cfg.Budget)
		if s == nil && p == nil {
			continue
		}
		size := max(cfg.ScaleBytes/int64(n), 1)
		spills, files, pfiles := "–", "–", "–"
		if s != nil {
			spills, files = commas(s.Store.Spills), commas(s.Store.Files)
		}
		if p != nil {
			pfiles = commas(p.Store.Files)
		}
		row := []string{commas(int64(n)), formatSize(size), rss(s), gbps(s), spills, files}
		if profiled {
			row = append(row, spillFileCPUCell(s))
		}
		t.rows = append(t.rows, append(row, rss(p), gbps(p), pfiles, ratio(mib(s), mib(p)), ratio(gb(s), gb(p))))
	}
	t.print(w)

	if len(cfg.ScaleBudgets) > 0 {
		fmt.Fprintf(w, "\nBudget: spool at %s buffers of %s each\n\n", commas(int64(cfg.ScaleLoad)), formatSize(max(cfg.ScaleBytes/int64(cfg.ScaleLoad), 1)))
		t = table{header: []string{"budget", "peak RSS", "÷ budget", "GB/s", "spills", "disk written"}}
		for _, b := range cfg.ScaleBudgets {
			s := scalePoint(run.Results, spoolImpl, cfg.ScaleLoad, b)
			if s == nil {
				continue
			}
			t.rows = append(t.rows, []string{formatSize(b), rss(s), ratio(mib(s), float64(b)/(1<<20)), gbps(s), commas(s.Store.Spills), formatSize(s.Store.DiskBytes)})
		}
		if p := scalePoint(run.Results, "multipart", cfg.ScaleLoad, cfg.Budget); p != nil {
			t.rows = append(t.rows, []string{pb.Label + " (no budget)", rss(p), "–", gbps(p), commas(p.Store.Spills), formatSize(p.Store.DiskBytes)})
		}
		t.print(w)
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets:")
	lo, hi := slices.Min(cfg.ScaleBuffers), slices.Max(cfg.ScaleBuffers)
	s0, s1 := scalePoint(run.Results, spoolImpl, lo, cfg.Budget), scalePoint(run.Results, spoolImpl, hi, cfg.Budget)
	text := fmt.Sprintf("spool's peak RSS at %s buffers within 10%% of that at %s", commas(int64(hi)), commas(int64(lo)))
	if s0 == nil || s1 == nil || lo == hi || math.IsNaN(mib(s0)) || math.IsNaN(mib(s1)) {
		printTarget(w, false, false, text+": not measured")
	} else {
		d := mib(s1)/mib(s0) - 1
		printTarget(w, math.Abs(d) <= 0.10, true, fmt.Sprintf("%s: %s vs %s (%+.1f%%)", text, rss(s1), rss(s0), 100*d))
	}
	text = fmt.Sprintf("spool's throughput at %s buffers >= %.1fx its throughput at %s", commas(int64(hi)), scaleThroughputTarget, commas(int64(lo)))
	if s0 == nil || s1 == nil || lo == hi || s0.GBps() <= 0 {
		printTarget(w, false, false, text+": not measured")
	} else {
		r := s1.GBps() / s0.GBps()
		printTarget(w, r >= scaleThroughputTarget, true, fmt.Sprintf("%s: %s (%.2f GB/s vs %.2f GB/s)", text, targetRatio(r, scaleThroughputTarget), s1.GBps(), s0.GBps()))
	}
	text = fmt.Sprintf("spill-file creation and closing < %.0f%% of spool's CPU at %s buffers", 100*scaleSpillFileCPUTarget, commas(int64(hi)))
	switch {
	case s1 == nil || s1.Scale == nil || !profiled:
		fmt.Fprintf(w, "  (%s: measured from the CPU profile; run with -profile DIR)\n", text)
	case s1.Scale.SpillFileCPU == nil:
		printTarget(w, false, false, text+": "+s1.Scale.ProfileError)
	case s1.Scale.SpillFileCPU.Total == 0:
		printTarget(w, false, false, text+": no samples in the profile")
	default:
		c := s1.Scale.SpillFileCPU
		printTarget(w, c.Share() < scaleSpillFileCPUTarget, true, fmt.Sprintf("%s: %.2f%% (%.0f ms of %.0f ms in the child's CPU profile, %s samples; %.2f%% of the samples with spool on the stack; %s spill files)",
			text, 100*c.Share(), float64(c.Match)/1e6, float64(c.Total)/1e6, commas(c.Samples), 100*c.SpoolShare(), commas(s1.Store.Files)))
	}
	p0, p1 := scalePoint(run.Results, "multipart", lo, cfg.Budget), scalePoint(run.Results, "multipart", hi, cfg.Budget)
	if p0 != nil && p1 != nil && lo != hi {
		fmt.Fprintf(w, "  (%s: %s at %s buffers, %s at %s, %s: each buffer keeps up to %s in a bytes.Buffer, whose capacity doubles as it grows)\n",
			pb.Label, rss(p0), commas(int64(lo)), rss(p1), commas(int64(hi)), ratio(mib(p1), mib(p0)), formatSize(cfg.Threshold))
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "peak RSS: VmHWM after the workload minus VmRSS before it. GB/s: bytes written and read back / wall time (decimal GB).")
	fmt.Fprintf(w, "spills: buffers moved from memory to a file. %s: a bytes.Buffer per buffer up to %s, then a file of its own (as in uploads).\n", pb.Label, formatSize(cfg.Threshold))
	fmt.Fprintln(w, "÷ peer: spool's figure over the per-buffer spool's at the same point. spool spill files: Stats().SpillFiles at the end, the")
	fmt.Fprintf(w, "segment files of its spill arena, shared by every spilled buffer; %s files: the files it created, one per buffer past %s.\n", pb.Label, formatSize(cfg.Threshold))
	if profiled {
		fmt.Fprintln(w, "spool CPU in spill files: the CPU time of the samples of the spool child's profile (-profile) whose stack creates or closes a")
		fmt.Fprintln(w, "spill file (spool's (*arena).pick or (*arena).close, or os.OpenFile, openat or (*os.File).Close called from spool), over all its samples.")
	}
	fmt.Fprintf(w, "Total time %.1f s.\n", run.Seconds)
}

// spillFileCPUCell formats the share of r's CPU profile spent on spill
// files, or "–".
func spillFileCPUCell(r *Result) string {
	switch {
	case r == nil || r.Scale == nil:
		return "–"
	case r.Scale.SpillFileCPU == nil:
		return "n/a"
	}
	return pctCell(r.Scale.SpillFileCPU.Share())
}
