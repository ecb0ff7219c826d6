package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// Child-process protocol. The parent runs
//
//	<os.Executable()> -child NAME <Config.childArgs...>
//
// (with SPOOLBENCH_CHILD=1 in its environment) for each implementation,
// one after another. The child measures its
// baseline memory, runs the scenario, and writes one Result as JSON on
// stdout; the parent copies its stderr to its own after its progress line. It exits 0
// if the run was clean, 1 if uploads read back wrong or operations failed
// (the Result is still printed), and 2 if it could not run at all. The
// parent adds the child's CPU time from its rusage.

// childEnv is set to "1" in a child's environment. The bench binary does
// not need it (the -child flag says it all); a test binary re-executed as a
// child uses it to know it should act as bench.
const childEnv = "SPOOLBENCH_CHILD"

// Result is the measurement of one implementation in one scenario.
type Result struct {
	Scenario    string `json:"scenario"`
	Impl        string `json:"impl"`
	Label       string `json:"label"`
	Clients     int    `json:"clients"`
	Uploads     int    `json:"uploads"`      // uploads completed
	WantUploads int    `json:"want_uploads"` // uploads in the workload
	Bytes       int64  `json:"bytes"`        // bytes of the uploads completed
	WantBytes   int64  `json:"want_bytes"`   // bytes of the workload

	WallSeconds    float64 `json:"wall_seconds"`     // the workload, in the child
	CPUUserSeconds float64 `json:"cpu_user_seconds"` // whole child, from rusage
	CPUSysSeconds  float64 `json:"cpu_sys_seconds"`
	// ChildSeconds is the wall time of the child process, as the parent
	// saw it, and OtherCPUSeconds the CPU time the machine spent on
	// anything but the child meanwhile (/proc/stat less the child's
	// rusage; -1 where unavailable): on a shared machine, the work of
	// others that competed with the child for the CPUs.
	ChildSeconds    float64 `json:"child_seconds"`
	OtherCPUSeconds float64 `json:"other_cpu_seconds"`

	// Memory, from /proc/self/status (0 where unavailable). The child
	// resets VmHWM to VmRSS before the workload if the kernel lets it
	// (HWMReset), reads BaselineRSS and BaselineHWM, runs the workload
	// and reads PeakHWM. PeakRSSAboveBaseline is PeakHWM - BaselineRSS.
	BaselineRSS          int64 `json:"baseline_rss"`
	BaselineHWM          int64 `json:"baseline_hwm"`
	PeakHWM              int64 `json:"peak_hwm"`
	PeakRSSAboveBaseline int64 `json:"peak_rss_above_baseline"`
	HWMReset             bool  `json:"hwm_reset"`

	// Bytes passed to write(2)/pwrite(2) and read(2)/pread(2) by the
	// workload, and the number of write calls, from /proc/self/io (wchar,
	// rchar, syscw); -1 where unavailable, and the write fields also when
	// profiling (-profile), as the CPU profile is written meanwhile. They
	// count the Go runtime's own calls too (see syscallWritesMatch).
	SyscallWriteBytes int64 `json:"syscall_write_bytes"`
	SyscallReadBytes  int64 `json:"syscall_read_bytes"`
	SyscallWrites     int64 `json:"syscall_writes"`
	// Bytes the workload dirtied in the page cache for the storage layer,
	// and bytes of those cancelled by truncating or deleting files before
	// they were written back (/proc/self/io write_bytes and
	// cancelled_write_bytes); -1 where unavailable.
	StorageWriteBytes   int64 `json:"storage_write_bytes"`
	CancelledWriteBytes int64 `json:"cancelled_write_bytes"`

	// Latency of the Write calls of the uploads (each of one piece).
	WriteLatency Latency `json:"write_latency"`
	// LockWaitSeconds is the time the child's goroutines spent blocked on
	// sync.Mutex, sync.RWMutex and runtime-internal locks over the
	// workload (runtime/metrics /sync/mutex/wait/total:seconds, an
	// estimate the runtime keeps without profiling); -1 where unavailable.
	LockWaitSeconds float64 `json:"lock_wait_seconds"`
	// Mutex is what the child's mutex profile says (-profile only; the
	// parent reads it, see mutexprof.go), or MutexError why it could not
	// be read.
	Mutex      *MutexProfile `json:"mutex,omitempty"`
	MutexError string        `json:"mutex_error,omitempty"`
	// Tail is where the child's slowest writes spent their time, from its
	// execution trace (-trace only; the parent reads it, see tracetail.go),
	// or TailError why it could not be read.
	Tail      *TraceTail `json:"tail,omitempty"`
	TailError string     `json:"tail_error,omitempty"`

	Store StoreStats `json:"store"`

	// Cache holds the measurements of the cache scenario, Micro those of
	// the micro scenario, Scale those of the scale scenario.
	Cache *CacheResult `json:"cache,omitempty"`
	Micro *MicroResult `json:"micro,omitempty"`
	Scale *ScaleResult `json:"scale,omitempty"`
	// Blobs holds those of the blobs scenario, Slow those of the slow one,
	// Churn those of the churn one.
	Blobs *BlobsResult `json:"blobs,omitempty"`
	Slow  *SlowResult  `json:"slow,omitempty"`
	Churn *ChurnResult `json:"churn,omitempty"`
	// Shrink holds those of the shrink scenario, DiskWait those of the
	// diskwait one.
	Shrink   *ShrinkResult   `json:"shrink,omitempty"`
	DiskWait *DiskWaitResult `json:"diskwait,omitempty"`

	// RSS over the workload, for scenarios that sample it: VmRSS minus
	// BaselineRSS every rssInterval, from a ticker goroutine in the child.
	RSS []RSSSample `json:"rss,omitempty"`

	// Go runtime, at the end of the workload.
	NumGC        uint32  `json:"num_gc"`
	GCPauseMs    float64 `json:"gc_pause_ms"`
	TotalAlloc   uint64  `json:"total_alloc"` // bytes allocated on the heap, cumulative
	RuntimeSys   uint64  `json:"runtime_sys"` // bytes obtained from the OS by the runtime
	HeapReleased uint64  `json:"heap_released"`

	ChecksumErrors int64  `json:"checksum_errors"` // uploads read back wrong
	Errors         int64  `json:"errors"`          // operations that failed
	FirstError     string `json:"first_error,omitempty"`
}

// GBps is the throughput in decimal GB of uploads per second of wall time.
func (r Result) GBps() float64 {
	if r.WallSeconds <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.WallSeconds / 1e9
}

// CPUSeconds is user plus system CPU time of the child.
func (r Result) CPUSeconds() float64 { return r.CPUUserSeconds + r.CPUSysSeconds }

// OtherShare is the share of the machine's CPU time that went to other
// work than the child while it ran, or NaN where unknown.
func (r Result) OtherShare(cpus int) float64 {
	if r.OtherCPUSeconds < 0 || r.ChildSeconds <= 0 || cpus <= 0 {
		return math.NaN()
	}
	return r.OtherCPUSeconds / (r.ChildSeconds * float64(cpus))
}

// problem describes what is wrong with r, or returns "" if nothing is.
func (r Result) problem() string {
	var p []string
	if r.ChecksumErrors > 0 {
		p = append(p, fmt.Sprintf("%d checksum errors", r.ChecksumErrors))
	}
	if r.Errors > 0 {
		p = append(p, fmt.Sprintf("%d errors", r.Errors))
	}
	// A diskwait client gives an upload up after its retries, and a
	// rollover at the disk budget fails, leaving the data in memory: what
	// a disk budget does, which its report measures; not failures.
	wantUploads, wantBytes, spillErrors := r.WantUploads, r.WantBytes, r.Store.SpillErrors
	if d := r.DiskWait; d != nil {
		wantUploads -= d.GaveUp
		wantBytes -= d.GaveUpBytes
		spillErrors -= d.SpillBudgetErrors
	}
	if r.Uploads != wantUploads || r.Bytes != wantBytes {
		p = append(p, fmt.Sprintf("%d of %d uploads (%d of %d bytes) completed", r.Uploads, wantUploads, r.Bytes, wantBytes))
	}
	if spillErrors > 0 {
		p = append(p, fmt.Sprintf("%d spill errors", spillErrors))
	}
	if len(p) == 0 {
		return ""
	}
	s := strings.Join(p, ", ")
	if r.FirstError != "" {
		s += "; first: " + r.FirstError
	}
	return s
}

// runChild runs job in a child process and returns its Result and what
// it wrote to stderr. The error is not nil if the child failed; the Result
// is filled in as far as the child got.
func runChild(cfg Config, job Job) (Result, []byte, error) {
	exe, err := os.Executable()
	if err != nil {
		return Result{}, nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(exe, cfg.childArgs(job)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	busyBefore, okBefore := machineBusy()
	start := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(start)
	busyAfter, okAfter := machineBusy()
	var res Result
	if len(bytes.TrimSpace(stdout.Bytes())) > 0 {
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil && runErr == nil {
			runErr = fmt.Errorf("bad result from child: %w", err)
		}
	} else if runErr == nil {
		runErr = errors.New("child printed no result")
	}
	res.ChildSeconds, res.OtherCPUSeconds = elapsed.Seconds(), -1
	if ps := cmd.ProcessState; ps != nil {
		res.CPUUserSeconds = ps.UserTime().Seconds()
		res.CPUSysSeconds = ps.SystemTime().Seconds()
		if okBefore && okAfter {
			// /proc/stat counts in ticks of 10 ms: a short child may
			// seem to have used more than the machine did.
			res.OtherCPUSeconds = max(0, busyAfter-busyBefore-res.CPUSeconds())
		}
	}
	if runErr != nil {
		return res, stderr.Bytes(), fmt.Errorf("child %s: %w", job.Impl, runErr)
	}
	return res, stderr.Bytes(), nil
}

// childMain runs cfg.Child in this process, prints its Result as JSON to
// stdout and returns the exit code.
func childMain(cfg Config, stdout, stderr io.Writer) int {
	sc, _ := lookupScenario(cfg.Scenario)
	job := Job{Impl: cfg.Child, Zipf: cfg.ChildZipf, Scan: cfg.ChildScan, Small: cfg.ChildSmall, Buffers: cfg.ChildBuffers, Budget: cfg.ChildBudget}
	for _, v := range sc.impls {
		if v.Name == job.Impl {
			job.Label = v.Label
		}
	}

	hwmReset := resetHWM()
	base := readProcStatus()
	ioBefore := readProcIO()
	workloadStart = time.Now()
	var sampler *rssSampler
	if sc.sample {
		sampler = startRSSSampler(base["VmRSS"], rssInterval, workloadStart)
	}
	stopProfile, err := startProfile(cfg.Profile, jobFile(cfg.Scenario, job))
	if err != nil {
		fmt.Fprintf(stderr, "bench: child %s: profile: %v\n", cfg.Child, err)
		return 2
	}
	stopTrace, err := startTrace(cfg.Trace, jobFile(cfg.Scenario, job))
	if err != nil {
		fmt.Fprintf(stderr, "bench: child %s: trace: %v\n", cfg.Child, err)
		return 2
	}
	waitBefore := lockWait()

	res, err := sc.run(cfg, job)
	waitAfter := lockWait()
	ioAfter := readProcIO() // before the profile is written out
	samples := sampler.stop()
	if terr := stopTrace(); terr != nil && err == nil {
		err = fmt.Errorf("trace: %w", terr)
	}
	if perr := stopProfile(); perr != nil && err == nil {
		err = fmt.Errorf("profile: %w", perr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: child %s: %v\n", cfg.Child, err)
		return 2
	}
	res.RSS = samples
	res.LockWaitSeconds = -1
	if waitBefore >= 0 && waitAfter >= 0 {
		res.LockWaitSeconds = waitAfter - waitBefore
	}

	peak := readProcStatus()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)

	res.HWMReset = hwmReset
	res.BaselineRSS = base["VmRSS"]
	res.BaselineHWM = base["VmHWM"]
	res.PeakHWM = peak["VmHWM"]
	if res.PeakHWM > 0 {
		res.PeakRSSAboveBaseline = res.PeakHWM - res.BaselineRSS
	}
	res.SyscallWriteBytes, res.SyscallReadBytes, res.SyscallWrites = -1, -1, -1
	res.StorageWriteBytes, res.CancelledWriteBytes = -1, -1
	if ioBefore != nil && ioAfter != nil {
		if cfg.Profile == "" {
			res.SyscallWriteBytes = ioAfter["wchar"] - ioBefore["wchar"]
			res.SyscallWrites = ioAfter["syscw"] - ioBefore["syscw"]
		}
		res.SyscallReadBytes = ioAfter["rchar"] - ioBefore["rchar"]
		res.StorageWriteBytes = ioAfter["write_bytes"] - ioBefore["write_bytes"]
		res.CancelledWriteBytes = ioAfter["cancelled_write_bytes"] - ioBefore["cancelled_write_bytes"]
	}
	res.NumGC = ms.NumGC
	res.GCPauseMs = float64(ms.PauseTotalNs) / float64(time.Millisecond)
	res.TotalAlloc = ms.TotalAlloc
	res.RuntimeSys = ms.Sys
	res.HeapReleased = ms.HeapReleased

	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		fmt.Fprintf(stderr, "bench: child %s: %v\n", cfg.Child, err)
		return 2
	}
	if res.problem() != "" {
		return 1
	}
	return 0
}

// machineBusy returns the CPU time the machine has spent on anything but
// idling since boot, in seconds, from the first line of /proc/stat (user,
// nice, system, irq, softirq and steal, in USER_HZ ticks, 100 a second on
// Linux), and whether it could read it.
func machineBusy() (float64, bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, false
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, false
		}
		busy += n
	}
	return float64(busy) / 100, true
}

// resetHWM resets this process's VmHWM to its current VmRSS (Linux 4.0+),
// and reports whether it could.
func resetHWM() bool {
	f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	_, err = f.WriteString("5")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err == nil
}

// readProcStatus returns the "Vm*" and "Rss*" fields of /proc/self/status
// in bytes, or an empty map where that file does not exist.
func readProcStatus() map[string]int64 {
	m := make(map[string]int64)
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return m
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || !(strings.HasPrefix(key, "Vm") || strings.HasPrefix(key, "Rss")) {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			m[key] = n << 10
		}
	}
	return m
}

// readProcIO returns the fields of /proc/self/io, or nil where that file
// cannot be read.
func readProcIO() map[string]int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return nil
	}
	m := make(map[string]int64)
	for _, line := range strings.Split(string(data), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64); err == nil {
			m[key] = n
		}
	}
	return m
}

// lockWait returns the runtime's estimate of the time goroutines have
// spent blocked on locks (sync and runtime-internal), in seconds, or -1.
func lockWait() float64 {
	s := []metrics.Sample{{Name: "/sync/mutex/wait/total:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return -1
	}
	return s[0].Value.Float64()
}

// workloadStart is when childMain started the workload (the RSS samples'
// time zero), for scenarios that record times of their own on the same
// clock (shrink); zero when a scenario runs outside a child.
var workloadStart time.Time

// rssInterval is how often a sampling child reads its RSS.
const rssInterval = 20 * time.Millisecond

// RSSSample is the RSS of a child above its baseline, at a time since the
// start of the workload, with two parts of the Go runtime's memory at the
// same moment (runtime/metrics, which does not stop the world): the heap's
// live and not yet collected objects, and goroutine stacks.
type RSSSample struct {
	Seconds     float64 `json:"t"`
	Bytes       int64   `json:"rss"`
	HeapObjects int64   `json:"heap_objects,omitempty"`
	Stacks      int64   `json:"stacks,omitempty"`
}

// peakOf returns the largest of f over samples.
func peakOf(samples []RSSSample, f func(RSSSample) int64) int64 {
	var m int64
	for _, s := range samples {
		m = max(m, f(s))
	}
	return m
}

// rssSampler reads VmRSS from /proc/self/status on a ticker.
type rssSampler struct {
	base    int64
	start   time.Time
	samples []RSSSample
	quit    chan struct{}
	done    chan struct{}
}

// startRSSSampler samples now and then every interval until stop, with
// times since start, or does nothing where /proc/self/status cannot be
// read (stop returns nil).
func startRSSSampler(base int64, interval time.Duration, start time.Time) *rssSampler {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil
	}
	s := &rssSampler{base: base, start: start, quit: make(chan struct{}), done: make(chan struct{})}
	buf := make([]byte, 4096)
	ms := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	value := func(v metrics.Value) int64 {
		if v.Kind() == metrics.KindUint64 {
			return int64(v.Uint64())
		}
		return 0
	}
	sample := func() {
		if rss, ok := readVmRSS(f, buf); ok {
			metrics.Read(ms)
			s.samples = append(s.samples, RSSSample{Seconds: time.Since(s.start).Seconds(), Bytes: rss - s.base,
				HeapObjects: value(ms[0].Value), Stacks: value(ms[1].Value)})
		}
	}
	sample()
	go func() {
		defer close(s.done)
		defer f.Close()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.quit:
				sample()
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the samples.
func (s *rssSampler) stop() []RSSSample {
	if s == nil {
		return nil
	}
	close(s.quit)
	<-s.done
	return s.samples
}

// readVmRSS reads the VmRSS line of /proc/self/status, opened as f, into
// buf (rereading from offset 0 makes the kernel regenerate it), without
// allocating.
func readVmRSS(f *os.File, buf []byte) (int64, bool) {
	n, err := f.ReadAt(buf, 0)
	if n == 0 && err != nil {
		return 0, false
	}
	data := buf[:n]
	i := bytes.Index(data, []byte("VmRSS:"))
	if i < 0 {
		return 0, false
	}
	data = data[i+len("VmRSS:"):]
	var kb int64
	seen := false
	for _, c := range data {
		switch {
		case c == ' ' || c == '\t':
			if seen {
				return kb << 10, true
			}
		case c >= '0' && c <= '9':
			kb = kb*10 + int64(c-'0')
			seen = true
		default:
			return kb << 10, seen
		}
	}
	return kb << 10, seen
}

// Profiles (-profile DIR). Each child writes DIR/NAME.cpu.pprof over its
// workload, DIR/NAME.heap.pprof at its end (allocations over the whole
// workload: go tool pprof -sample_index=alloc_space) and
// DIR/NAME.mutex.pprof, every lock contention over the workload (see
// mutexprof.go; go tool pprof shows the delay), where NAME is jobFile. A
// scenario with a moment of peak memory also writes
// DIR/NAME.peak.heap.pprof there (atPeak): the scale scenario when every
// buffer is full, the slow scenario when the first upload is in and every
// other still in flight (live heap: -sample_index=inuse_space).

// atPeak is called by a scenario at its moment of peak memory; it writes
// the peak heap profile when profiling, and does nothing otherwise.
var atPeak = func() {}

// jobFile names the files of job, such as "scale-spool-10000-64MiB".
func jobFile(scenario string, j Job) string {
	name := scenario + "-" + j.Impl
	if j.Zipf != 0 {
		name += fmt.Sprintf("-s%g", j.Zipf)
	}
	if j.Scan {
		name += "-scan"
	}
	if j.Small {
		name += "-small"
	}
	if j.Buffers != 0 {
		name += fmt.Sprintf("-%d-%dMiB", j.Buffers, j.Budget>>20)
	}
	return name
}

// startProfile starts the CPU profile of a child in dir, if dir is not
// "", and returns the function that stops it and writes the heap profile.
func startProfile(dir, name string) (func() error, error) {
	if dir == "" {
		return func() error { return nil }, nil
	}
	writeHeap := func(file string) error {
		runtime.GC() // the heap profile shows the heap as of the last GC
		return writeProfile(dir, file, "heap")
	}
	cpu, err := os.Create(filepath.Join(dir, name+".cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		return nil, err
	}
	var peakErr error
	atPeak = func() { peakErr = writeHeap(name + ".peak.heap.pprof") }
	prevRate := runtime.SetMutexProfileFraction(mutexProfileRate)
	return func() error {
		pprof.StopCPUProfile()
		atPeak = func() {}
		err := cpu.Close()
		if merr := writeProfile(dir, name+".mutex.pprof", "mutex"); err == nil {
			err = merr
		}
		runtime.SetMutexProfileFraction(prevRate)
		if herr := writeHeap(name + ".heap.pprof"); err == nil {
			err = herr
		}
		if err == nil {
			err = peakErr
		}
		return err
	}, nil
}

// writeProfile writes the runtime/pprof profile of that name to
// dir/file.
func writeProfile(dir, file, name string) error {
	f, err := os.Create(filepath.Join(dir, file))
	if err != nil {
		return err
	}
	err = pprof.Lookup(name).WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
