// Command bench shows what spool is for, on the machine it runs on:
// throughput close to keeping everything in RAM, with peak memory that
// follows the budget instead of the load. It measures spool doing its main
// job, holding many concurrent uploads under one memory budget, next to
// the plain alternatives.
//
// Run it from the repository root:
//
//	go run ./bench                   # the uploads scenario, in well under a minute
//	go run ./bench -budget 16MiB -impl spool,multipart
//	go run ./bench -json             # machine-readable results, no progress line
//	go run ./bench -scenario micro   # per-operation costs against their baselines
//	go run ./bench -scenario scale   # peak RSS as buffers grow 10 -> 10,000, and as the budget grows
//	go run ./bench -scenario cache   # spool as a cache: eviction policies under Zipf reads
//	go run ./bench -scenario blobs   # 100,000 small blobs: memory efficiency, next to a map of []byte
//	go run ./bench -scenario slow    # 10,000 slow uploads in flight: RSS above a discarding harness
//	go run ./bench -scenario churn   # spilled buffers come and go: disk blocks held vs live spilled bytes
//	go run ./bench -scenario shrink  # the uploads, with the budget shrunk 64 -> 16 MiB half-way (SetMemoryBudget)
//	go run ./bench -scenario diskwait # the uploads under a 256 MiB disk budget: reserving, waiting for disk, or failing at once
//	go run ./bench -scenario all -plot bench/results/memory.png
//
// Scenarios (-scenario, default uploads; all runs every one):
//
//   - uploads: 200 concurrent slow clients, uploads of log-uniform size
//     4 KiB–32 MiB (fixed seed, about 1.5 GiB), written in 32 KiB pieces,
//     read back and checksummed, closed; with spool (one Manager, -budget),
//     a bytes.Buffer per upload, a temporary file per upload, and two
//     per-buffer spools (1 MiB in memory, then a file of their own): one
//     like mime/multipart's ReadForm, and github.com/djherbis/buffer.
//   - micro: in-memory write+read, spilled round trip and NewBuffer+Close,
//     each next to its peer and physical baselines in the same process.
//   - scale: peak RSS and throughput as the buffers held at once go
//     10 -> 10,000 at a fixed budget, and as the budget goes 16 -> 256 MiB;
//     the spill files spool kept open, and with -profile the share of its
//     CPU spent creating and closing them (read from the child's profile).
//   - cache: eviction policies against offline ceilings, with whole-blob
//     reads and with small (range) reads.
//   - blobs: 100,000 blobs of 256 B–16 KiB under a 64 MiB budget, then
//     Zipf reads: the efficiency of the budget (data held in memory ÷
//     MemoryInUse), the hit ratio and peak RSS, next to a map of []byte
//     capped at the same bytes. spool's child runs under a limit of 256
//     open files (-blobs-fd-limit): its spill files must stay few.
//   - slow: 10,000 concurrent slow uploads under a 16 MiB budget, through
//     io.Copy into Buffers and through spoolhttp over loopback HTTP, each
//     next to the same harness with a discarding sink.
//   - churn: 10,000 buffers of 64 KiB spilled (Rollover), 9,000 of them
//     closed, 9,000 new ones spilled: the blocks the file system holds for
//     spool's spill files (fstat through /proc/self/fd) next to
//     Stats().DiskLive, after each step.
//   - shrink: the uploads workload against spool alone, with a 64 MiB
//     budget (-shrink-budget) that Manager.SetMemoryBudget shrinks to
//     16 MiB (-shrink-to) once the clients have written half the bytes
//     (-shrink-at): what it returned and how long it took, MemoryInUse
//     read in a tight loop from its return to the end (the target: never
//     above the new budget), every upload read back intact, and the RSS
//     before and after (SetMemoryBudget returns the memory to the system
//     itself, with debug.FreeOSMemory).
//   - diskwait: the uploads workload against spool alone, a 64 MiB
//     memory budget (-budget) and a 256 MiB disk budget (-diskwait-budget),
//     smaller than the uploads in flight, in three variants: reserve
//     (as wait, and each attempt first reserves its upload's size with
//     Buffer.ReserveDisk), wait (each attempt at an upload in a buffer
//     from Manager.NewBufferContext, whose context ends after
//     -diskwait-deadline) and nowait (Manager.NewBuffer: a write short of
//     disk fails at once with ErrDiskBudget). A failed attempt is closed and the upload retried
//     from its first byte (-diskwait-retries, -diskwait-backoff), like an
//     HTTP client after a 507; the report counts the failures by cause,
//     the writes waiting (Stats().DiskWaiters, DiskWaitTime), DiskInUse
//     against the disk budget, and every completed upload read back.
//
// Each job runs in a child process of its own (the bench binary
// re-executed with the hidden flag -child NAME), so that its peak RSS is its
// own. The child prints one JSON Result on stdout; the parent adds the
// child's CPU time, and the CPU time other processes took meanwhile
// (/proc/stat: on a shared machine they move every tail latency), and
// prints a table per scenario that reads well in a terminal and pastes
// into Markdown, with the targets marked PASS or MISS.
// On a terminal the parent keeps a progress line on stderr. bench exits
// non-zero if any upload read back wrong, any operation failed or any
// child failed (a missed target is not a failure).
//
// -plot DIR/NAME.png (or .svg) draws, with gonum.org/v1/plot,
// DIR/uploads-NAME.png: the RSS of each implementation over time during
// uploads (each child samples its VmRSS every 20 ms), DIR/scale-NAME.png:
// the scale curves, four panels, DIR/blobs-NAME.png: memory held and RSS
// over the run and the hit ratio over the reads, and DIR/slow-NAME.png:
// the RSS over time of each slow variant next to its harness, and
// DIR/shrink-NAME.png: RSS and MemoryInUse over the shrink run, the
// moment of the shrink marked. -profile DIR writes each child's CPU, heap
// and mutex profiles for go tool pprof; the scale report reads spool's
// CPU profiles back (pprof.go), and the uploads and shrink reports the
// lock contention in the mutex profiles (mutexprof.go).
//
// Files: main.go (flags, orchestration), workload.go (the uploads
// scenario), impl.go (the implementations), child.go (the child-process
// protocol, the /proc measurements, RSS sampling, profiles), report.go
// (the uploads tables), progress.go (the progress line), micro.go and
// scale.go (those scenarios and their tables), plot.go (-plot), cache.go
// (the cache scenario and its offline ceilings), cache_report.go (its
// tables), blobs.go and blobs_report.go (the blobs scenario), slow.go and
// slow_report.go (the slow scenario and its HTTP client process),
// churn.go and churn_report.go (the churn scenario), shrink.go and
// shrink_report.go (the shrink scenario), diskwait.go and
// diskwait_report.go (the diskwait scenario), pprof.go (reading profiles),
// mutexprof.go (lock contention from mutex profiles), procfd_*.go (the
// process's spill files and descriptors, from /proc/self/fd),
// fdlimit_*.go (raising or lowering the limit on open files).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Config is everything a run depends on. The parent hands it to each child
// as flags (Config.childArgs), so the child sees the same values.
type Config struct {
	Scenario string   `json:"scenario"` // name of a scenario, see scenarios, or "all"
	Impls    []string `json:"impls"`    // implementations to run, in order; empty: all of the scenario's (parent only)
	Budget   int64    `json:"budget"`   // spool memory budget, bytes
	Clients  int      `json:"clients"`  // concurrent goroutines
	Total    int64    `json:"total"`    // target total upload bytes; the upload count follows
	MinSize  int64    `json:"min_size"` // smallest upload, bytes
	MaxSize  int64    `json:"max_size"` // largest upload, bytes
	Piece    int      `json:"piece"`    // bytes per Write
	// Threshold is what each upload of a per-buffer spool keeps in memory
	// before it moves to a file of its own.
	Threshold int64  `json:"threshold"`
	Seed      uint64 `json:"seed"`    // seed of upload sizes and contents
	TempDir   string `json:"tempdir"` // directory for spill and temporary files; "" = os.TempDir()

	// The cache scenario (cache.go).
	CacheBudget int64     `json:"cache_budget"`  // budget of its one Manager, bytes
	Blobs       int       `json:"blobs"`         // blobs written, then read
	BlobMinSize int64     `json:"blob_min_size"` // smallest blob, bytes
	BlobMaxSize int64     `json:"blob_max_size"` // largest blob, bytes
	Reads       int       `json:"reads"`         // reads per run
	Zipf        []float64 `json:"zipf"`          // Zipf exponents: one set of runs each
	ScanBlobs   int       `json:"scan_blobs"`    // blobs of the scan test; 0: no scan test
	ScanSize    int64     `json:"scan_size"`     // size of each scan blob, bytes
	ScanImpls   []string  `json:"scan_impls"`    // implementations that also run the scan test
	SmallRead   int64     `json:"small_read"`    // bytes of each small read (at the first exponent); 0: no small-read runs

	// The blobs scenario (blobs.go).
	BlobsCount   int     `json:"blobs_count"`    // blobs written, then read
	BlobsMinSize int64   `json:"blobs_min_size"` // smallest blob, bytes
	BlobsMaxSize int64   `json:"blobs_max_size"` // largest blob, bytes
	BlobsBudget  int64   `json:"blobs_budget"`   // budget of the Manager, and the cap of the map
	BlobsReads   int     `json:"blobs_reads"`    // reads after the writes
	BlobsZipf    float64 `json:"blobs_zipf"`     // Zipf exponent of the reads
	BlobsFDLimit int     `json:"blobs_fd_limit"` // limit on open files of spool's child; 0: raise it to the hard limit instead

	// The churn scenario (churn.go).
	ChurnBuffers int   `json:"churn_buffers"` // buffers spilled first
	ChurnClose   int   `json:"churn_close"`   // of those, closed
	ChurnNew     int   `json:"churn_new"`     // buffers spilled after the closes
	ChurnSize    int64 `json:"churn_size"`    // bytes of each buffer

	// The shrink scenario (shrink.go): the uploads workload against one
	// Manager whose budget SetMemoryBudget shrinks part-way.
	ShrinkBudget int64   `json:"shrink_budget"` // the budget it starts with
	ShrinkTo     int64   `json:"shrink_to"`     // the budget SetMemoryBudget sets
	ShrinkAt     float64 `json:"shrink_at"`     // fraction of the bytes written when it is called

	// The diskwait scenario (diskwait.go): the uploads workload against
	// one Manager with a disk budget smaller than the uploads in flight.
	DiskWaitBudget   int64         `json:"diskwait_budget"`   // Options.DiskBudget
	DiskWaitDeadline time.Duration `json:"diskwait_deadline"` // of each attempt's context (wait)
	DiskWaitRetries  int           `json:"diskwait_retries"`  // retries of an upload whose attempt failed
	DiskWaitBackoff  time.Duration `json:"diskwait_backoff"`  // pause before each retry

	// The slow scenario (slow.go).
	SlowUploads     int           `json:"slow_uploads"`      // concurrent uploads of the io.Copy variants
	SlowHTTPUploads int           `json:"slow_http_uploads"` // of the HTTP variants; 0: as SlowUploads, within the fd limit
	SlowMinSize     int64         `json:"slow_min_size"`     // smallest upload, bytes
	SlowMaxSize     int64         `json:"slow_max_size"`     // largest upload, bytes
	SlowRead        int           `json:"slow_read"`         // bytes each Read of an upload's body returns
	SlowPause       time.Duration `json:"slow_pause"`        // pause before each Read's bytes arrive
	SlowBudget      int64         `json:"slow_budget"`       // budget of the Manager

	// The micro scenario (micro.go).
	MicroMemSize   int64         `json:"micro_mem_size"`   // bytes written and read per in-memory op
	MicroSpillSize int64         `json:"micro_spill_size"` // bytes written and read per spilled op
	MicroPiece     int           `json:"micro_piece"`      // bytes per Write and Read
	MicroReps      int           `json:"micro_reps"`       // timed repetitions; medians are reported
	MicroTime      time.Duration `json:"micro_time"`       // length of each repetition

	// The scale scenario (scale.go).
	ScaleBytes   int64   `json:"scale_bytes"`   // bytes each point holds at once, over all its buffers
	ScaleBuffers []int   `json:"scale_buffers"` // concurrent buffers of the concurrency sweep, at -budget
	ScaleBudgets []int64 `json:"scale_budgets"` // budgets of the budget sweep, at -scale-load buffers
	ScaleLoad    int     `json:"scale_load"`    // concurrent buffers of the budget sweep

	Profile string `json:"-"` // directory for each child's CPU, heap and mutex profiles; "" = none
	Trace   string `json:"-"` // directory for each child's execution trace; "" = none

	JSON  bool   `json:"-"` // print JSON instead of a table (parent only)
	Plot  string `json:"-"` // write plots to files named after this one (parent only); see plotPath
	Child string `json:"-"` // hidden: run this implementation in this process and print JSON
	// Hidden, for a child of the cache scenario: the Zipf exponent of its
	// run, and whether it runs the scan test.
	ChildZipf  float64 `json:"-"`
	ChildScan  bool    `json:"-"`
	ChildSmall bool    `json:"-"`
	// Hidden, for a child of the scale scenario: its buffers and budget.
	ChildBuffers int   `json:"-"`
	ChildBudget  int64 `json:"-"`
	// Hidden, for the client process of the slow scenario's HTTP variants
	// (slow.go): the server's address, and the uploads to send.
	SlowClient        string `json:"-"`
	SlowClientUploads int    `json:"-"`
}

// defaultConfig is the embedded default workload of `go run ./bench`.
func defaultConfig() Config {
	return Config{
		Scenario: "uploads",
		Budget:   64 << 20,
		Clients:  200,
		Total:    3 << 29, // 1.5 GiB
		MinSize:  4 << 10,
		MaxSize:  32 << 20,
		Piece:    32 << 10,
		Seed:     1,

		Threshold: 1 << 20,

		CacheBudget: 256 << 20,
		Blobs:       2000,
		BlobMinSize: 1 << 10,
		BlobMaxSize: 4 << 20,
		Reads:       200_000,
		Zipf:        []float64{1.1, 0.8},
		ScanBlobs:   256,
		ScanSize:    4 << 20,
		ScanImpls:   []string{"lru", "lfu"},
		SmallRead:   4 << 10,

		BlobsCount:   100_000,
		BlobsMinSize: 256,
		BlobsMaxSize: 16 << 10,
		BlobsBudget:  64 << 20,
		BlobsReads:   200_000,
		BlobsZipf:    1.1,
		BlobsFDLimit: 256,

		ChurnBuffers: 10_000,
		ChurnClose:   9_000,
		ChurnNew:     9_000,
		ChurnSize:    64 << 10,

		ShrinkBudget: 64 << 20,
		ShrinkTo:     16 << 20,
		ShrinkAt:     0.5,

		DiskWaitBudget:   256 << 20,
		DiskWaitDeadline: 5 * time.Minute,
		DiskWaitRetries:  100,
		DiskWaitBackoff:  10 * time.Millisecond,

		SlowUploads: 10_000,
		SlowMinSize: 64 << 10,
		SlowMaxSize: 256 << 10,
		SlowRead:    4 << 10,
		SlowPause:   20 * time.Millisecond,
		SlowBudget:  16 << 20,

		MicroMemSize:   64 << 20,
		MicroSpillSize: 256 << 20,
		MicroPiece:     64 << 10,
		MicroReps:      9,
		MicroTime:      150 * time.Millisecond,

		ScaleBytes:   512 << 20,
		ScaleBuffers: []int{10, 100, 1000, 10000},
		ScaleBudgets: []int64{16 << 20, 32 << 20, 64 << 20, 128 << 20, 256 << 20},
		ScaleLoad:    1000,
	}
}

// A scenario is one workload, selected with -scenario. Each has its own
// implementations (what -impl selects from: ways of holding uploads, or
// eviction policies) and runs one child process per job.
type scenario struct {
	name  string
	desc  string
	impls []variant // in the default order
	// jobs returns the child runs for the implementations names, in order.
	jobs func(cfg Config, names []string) []Job
	// prepare, if not nil, runs in the parent before the children, to
	// compute what needs no implementation (the cache's offline ceiling).
	// An error is a failure of the run; the children run all the same.
	prepare func(cfg Config, run *Run) error
	// run runs one job in this process and returns its measurements
	// (without CPU time and RSS, which the child and parent fill in).
	run func(cfg Config, job Job) (Result, error)
	// finish, if not nil, runs in the parent after each child that printed
	// a Result, to add to it what the parent measures from the child's
	// files (scale: the share of spill files in its CPU profile).
	finish func(cfg Config, job Job, res *Result)
	// progress summarizes a result for the parent's progress line.
	progress func(Result) string
	// report prints the run as tables.
	report func(w io.Writer, run Run)
	// sample makes each child record its RSS over time (Result.RSS).
	sample bool
	// plot, if not nil, draws the run into the file path (-plot).
	plot func(path string, run Run) error
}

// A variant is an implementation of a scenario, as named by -impl.
type variant struct {
	Name  string // for -impl and JSON
	Label string // for the table
}

// A Job is one child run: an implementation with the scenario's parameters
// for that run.
type Job struct {
	Impl    string
	Label   string
	Zipf    float64 // cache: Zipf exponent of the reads
	Scan    bool    // cache: with the scan in the middle
	Small   bool    // cache: small reads instead of whole-blob reads
	Buffers int     // scale: buffers held at once
	Budget  int64   // scale: spool's memory budget
}

var scenarios = []scenario{
	{
		name:  "uploads",
		desc:  "concurrent uploads written in pieces, read back and checksummed",
		impls: uploadVariants(),
		jobs: func(_ Config, names []string) []Job {
			var jobs []Job
			for _, n := range names {
				im, _ := lookupImpl(n)
				jobs = append(jobs, Job{Impl: im.Name, Label: im.Label})
			}
			return jobs
		},
		run: runUploads,
		progress: func(r Result) string {
			return fmt.Sprintf("%.2f s, %.2f GB/s", r.WallSeconds, r.GBps())
		},
		report: printReport,
		sample: true,
		plot:   plotUploads,
	},
	{
		name:     "cache",
		desc:     "one Manager as a cache: blobs read with Zipf popularity, per eviction policy, next to an offline greedy ceiling",
		impls:    cacheVariantList(),
		jobs:     cacheJobs,
		prepare:  prepareCache,
		run:      runCache,
		progress: cacheProgress,
		report:   printCacheReport,
	},
	{
		name:     "micro",
		desc:     "per-operation costs, each next to its physical or peer baseline in the same process: in-memory write+read, spilled round trip, NewBuffer+Close",
		impls:    microVariants,
		jobs:     variantJobs(microVariants),
		run:      runMicro,
		progress: microProgress,
		report:   printMicroReport,
	},
	{
		name:     "scale",
		desc:     "peak RSS and throughput as the buffers held at once grow 10 -> 10,000 at a fixed budget, and as the budget grows at a fixed load",
		impls:    scaleVariantList(),
		jobs:     scaleJobs,
		run:      runScale,
		finish:   finishScale,
		progress: scaleProgress,
		report:   printScaleReport,
		plot:     plotScale,
	},
	{
		name:     "blobs",
		desc:     "100,000 small blobs (256 B–16 KiB) in one Manager under a 64 MiB budget, then Zipf reads: memory efficiency and hit ratio, next to a map of []byte capped at the same bytes",
		impls:    blobsVariants,
		jobs:     variantJobs(blobsVariants),
		run:      runBlobs,
		progress: blobsProgress,
		report:   printBlobsReport,
		sample:   true,
		plot:     plotBlobs,
	},
	{
		name:     "slow",
		desc:     "10,000 concurrent slow uploads under a 16 MiB budget, through io.Copy and through spoolhttp over loopback HTTP: peak RSS above the same harness with a discarding sink",
		impls:    slowVariants,
		jobs:     variantJobs(slowVariants),
		run:      runSlow,
		progress: slowProgress,
		report:   printSlowReport,
		sample:   true,
		plot:     plotSlow,
	},
	{
		name:     "shrink",
		desc:     "the uploads workload against spool with a 64 MiB budget, shrunk to 16 MiB by SetMemoryBudget half-way: MemoryInUse sampled from its return on, RSS before and after",
		impls:    shrinkVariants,
		jobs:     variantJobs(shrinkVariants),
		run:      runShrink,
		progress: shrinkProgress,
		report:   printShrinkReport,
		sample:   true,
		plot:     plotShrink,
	},
	{
		name:     "diskwait",
		desc:     "the uploads workload against spool with a 256 MiB disk budget, smaller than the uploads in flight: uploads that reserve their size (ReserveDisk), buffers that wait for disk (NewBufferContext) and buffers that fail at once (NewBuffer), failed uploads retried",
		impls:    diskwaitVariants,
		jobs:     variantJobs(diskwaitVariants),
		run:      runDiskWait,
		progress: diskwaitProgress,
		report:   printDiskWaitReport,
	},
	{
		name:     "churn",
		desc:     "10,000 spilled buffers of 64 KiB, 9,000 closed, 9,000 new spilled: the disk blocks spool's spill files hold (fstat) next to the live spilled bytes",
		impls:    churnVariants,
		jobs:     variantJobs(churnVariants),
		run:      runChurn,
		progress: churnProgress,
		report:   printChurnReport,
	},
}

// allScenarios is the -scenario that runs every scenario in turn.
const allScenarios = "all"

func lookupScenario(name string) (scenario, bool) {
	for _, s := range scenarios {
		if s.name == name {
			return s, true
		}
	}
	return scenario{}, false
}

func scenarioNames() []string {
	var names []string
	for _, s := range scenarios {
		names = append(names, s.name)
	}
	return names
}

// selected returns the scenarios cfg.Scenario names.
func (cfg Config) selected() []scenario {
	if cfg.Scenario == allScenarios {
		return scenarios
	}
	sc, ok := lookupScenario(cfg.Scenario)
	if !ok {
		return nil
	}
	return []scenario{sc}
}

// implsOf returns the names of the implementations of sc that cfg selects:
// those of cfg.Impls that sc has, or all of sc's if cfg.Impls is empty.
func (cfg Config) implsOf(sc scenario) []string {
	var names []string
	for _, v := range sc.impls {
		if len(cfg.Impls) == 0 {
			names = append(names, v.Name)
		}
	}
	for _, n := range cfg.Impls {
		if hasVariant(sc, n) {
			names = append(names, n)
		}
	}
	return names
}

// variantJobs returns a scenario's jobs function for its variants vs:
// a child run for each of the names that is one of them, in order.
func variantJobs(vs []variant) func(Config, []string) []Job {
	return func(_ Config, names []string) []Job {
		var jobs []Job
		for _, n := range names {
			for _, v := range vs {
				if v.Name == n {
					jobs = append(jobs, Job{Impl: n, Label: v.Label})
				}
			}
		}
		return jobs
	}
}

func hasVariant(sc scenario, name string) bool {
	for _, v := range sc.impls {
		if v.Name == name {
			return true
		}
	}
	return false
}

func variantNames(sc scenario) []string {
	var names []string
	for _, v := range sc.impls {
		names = append(names, v.Name)
	}
	return names
}

// parseFlags parses args (without the program name) into a Config.
func parseFlags(args []string, stderr io.Writer) (Config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(fs) }
	fs.StringVar(&cfg.Scenario, "scenario", cfg.Scenario, "`name` of the workload to run: "+strings.Join(append(scenarioNames(), allScenarios), "|"))
	var implHelp []string
	for _, sc := range scenarios {
		implHelp = append(implHelp, sc.name+": "+strings.Join(variantNames(sc), ","))
	}
	impls := fs.String("impl", strings.Join(cfg.Impls, ","), "comma-separated `list` of implementations to run, in order (default: all of the scenario's; "+strings.Join(implHelp, "; ")+")")
	fs.Var((*byteSize)(&cfg.Budget), "budget", "uploads, churn, and scale's concurrency sweep: spool memory budget, a `size`: bytes, or a number with a unit (64MiB, 1.5GiB, 500MB)")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "uploads: concurrent client goroutines")
	fs.Var((*byteSize)(&cfg.Total), "total", "uploads: total upload `size` to aim for; the upload count is the smallest that reaches it with -seed")
	fs.Var((*byteSize)(&cfg.MinSize), "min-size", "uploads: smallest upload `size`")
	fs.Var((*byteSize)(&cfg.MaxSize), "max-size", "uploads: largest upload `size`")
	piece := byteSize(cfg.Piece)
	fs.Var(&piece, "piece", "uploads: `size` of each Write of an upload")
	fs.Var((*byteSize)(&cfg.Threshold), "threshold", "uploads and scale: `size` each upload of a per-buffer spool (multipart, djherbis) keeps in memory before it moves to a file of its own")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the workload: sizes, contents, and the cache's reads")
	fs.StringVar(&cfg.TempDir, "tempdir", cfg.TempDir, "`dir`ectory for spill and temporary files (default os.TempDir())")
	fs.Var((*byteSize)(&cfg.CacheBudget), "cache-budget", "cache: memory budget `size` of the one Manager")
	fs.IntVar(&cfg.Blobs, "blobs", cfg.Blobs, "cache: `number` of blobs written and then read")
	fs.Var((*byteSize)(&cfg.BlobMinSize), "blob-min-size", "cache: smallest blob `size`")
	fs.Var((*byteSize)(&cfg.BlobMaxSize), "blob-max-size", "cache: largest blob `size`")
	fs.IntVar(&cfg.Reads, "reads", cfg.Reads, "cache: `number` of reads per run")
	fs.Var((*floatList)(&cfg.Zipf), "zipf", "cache: comma-separated Zipf `exponents`, one set of runs each; the scan test uses the first")
	fs.IntVar(&cfg.ScanBlobs, "scan-blobs", cfg.ScanBlobs, "cache: `number` of new cold blobs the scan test writes, reads once and closes (0: no scan test)")
	fs.Var((*byteSize)(&cfg.ScanSize), "scan-size", "cache: `size` of each scan blob")
	scanImpls := fs.String("scan-impl", strings.Join(cfg.ScanImpls, ","), "cache: comma-separated `list` of implementations that also run the scan test")
	fs.Var((*byteSize)(&cfg.SmallRead), "small-read", "cache: `size` of each small read (a page at a random offset, like an HTTP Range request); each policy also runs small reads at the first exponent (0: no small-read runs)")
	fs.IntVar(&cfg.BlobsCount, "blobs-count", cfg.BlobsCount, "blobs: `number` of blobs written, then read")
	fs.Var((*byteSize)(&cfg.BlobsMinSize), "blobs-min-size", "blobs: smallest blob `size`")
	fs.Var((*byteSize)(&cfg.BlobsMaxSize), "blobs-max-size", "blobs: largest blob `size`")
	fs.Var((*byteSize)(&cfg.BlobsBudget), "blobs-budget", "blobs: memory budget `size` of the Manager, and the cap of the map baseline")
	fs.IntVar(&cfg.BlobsReads, "blobs-reads", cfg.BlobsReads, "blobs: `number` of whole-blob reads after the writes")
	fs.Float64Var(&cfg.BlobsZipf, "blobs-zipf", cfg.BlobsZipf, "blobs: Zipf `exponent` of the reads")
	fs.IntVar(&cfg.BlobsFDLimit, "blobs-fd-limit", cfg.BlobsFDLimit, "blobs: `number` of open files spool's child is limited to (soft and hard limit); 0: no lower limit, the soft limit raised to the hard one")
	fs.IntVar(&cfg.ChurnBuffers, "churn-buffers", cfg.ChurnBuffers, "churn: `number` of buffers written and rolled over first")
	fs.IntVar(&cfg.ChurnClose, "churn-close", cfg.ChurnClose, "churn: `number` of those closed, chosen at random (-seed)")
	fs.IntVar(&cfg.ChurnNew, "churn-new", cfg.ChurnNew, "churn: `number` of new buffers written and rolled over after the closes")
	fs.Var((*byteSize)(&cfg.ChurnSize), "churn-size", "churn: `size` of each buffer")
	fs.Var((*byteSize)(&cfg.ShrinkBudget), "shrink-budget", "shrink: memory budget `size` the Manager starts with")
	fs.Var((*byteSize)(&cfg.ShrinkTo), "shrink-to", "shrink: memory budget `size` Manager.SetMemoryBudget sets part-way")
	fs.Float64Var(&cfg.ShrinkAt, "shrink-at", cfg.ShrinkAt, "shrink: `fraction` of the workload's bytes the clients have written when SetMemoryBudget is called")
	fs.Var((*byteSize)(&cfg.DiskWaitBudget), "diskwait-budget", "diskwait: disk budget `size` of the Manager (Options.DiskBudget), smaller than the uploads in flight")
	fs.DurationVar(&cfg.DiskWaitDeadline, "diskwait-deadline", cfg.DiskWaitDeadline, "diskwait: `duration` after which the context of each attempt at an upload ends (variant wait)")
	fs.IntVar(&cfg.DiskWaitRetries, "diskwait-retries", cfg.DiskWaitRetries, "diskwait: `number` of times a client retries an upload whose attempt failed, from its first byte, before giving it up")
	fs.DurationVar(&cfg.DiskWaitBackoff, "diskwait-backoff", cfg.DiskWaitBackoff, "diskwait: `duration` a client pauses before each retry")
	fs.IntVar(&cfg.SlowUploads, "slow-uploads", cfg.SlowUploads, "slow: `number` of concurrent uploads of the io.Copy variants")
	fs.IntVar(&cfg.SlowHTTPUploads, "slow-http-uploads", cfg.SlowHTTPUploads, "slow: `number` of concurrent uploads of the HTTP variants (0: as -slow-uploads, fewer if the server process's fd limit requires it)")
	fs.Var((*byteSize)(&cfg.SlowMinSize), "slow-min-size", "slow: smallest upload `size`")
	fs.Var((*byteSize)(&cfg.SlowMaxSize), "slow-max-size", "slow: largest upload `size`")
	slowRead := byteSize(cfg.SlowRead)
	fs.Var(&slowRead, "slow-read", "slow: `size` each Read of an upload's body returns")
	fs.DurationVar(&cfg.SlowPause, "slow-pause", cfg.SlowPause, "slow: `duration` each Read of an upload's body waits before its bytes arrive")
	fs.Var((*byteSize)(&cfg.SlowBudget), "slow-budget", "slow: memory budget `size` of the Manager")
	fs.Var((*byteSize)(&cfg.MicroMemSize), "micro-size", "micro: `size` written and read back per in-memory op")
	fs.Var((*byteSize)(&cfg.MicroSpillSize), "micro-spill-size", "micro: `size` written and read back per spilled op")
	microPiece := byteSize(cfg.MicroPiece)
	fs.Var(&microPiece, "micro-piece", "micro: `size` of each Write and Read")
	fs.IntVar(&cfg.MicroReps, "micro-reps", cfg.MicroReps, "micro: timed `repetitions` of each measurement (medians are reported)")
	fs.DurationVar(&cfg.MicroTime, "micro-time", cfg.MicroTime, "micro: `duration` of each repetition")
	fs.Var((*byteSize)(&cfg.ScaleBytes), "scale-bytes", "scale: `size` held at once at each point, split evenly over its buffers")
	fs.Var((*intList)(&cfg.ScaleBuffers), "scale-buffers", "scale: comma-separated `counts` of buffers held at once, for the concurrency sweep at -budget")
	fs.Var((*sizeList)(&cfg.ScaleBudgets), "scale-budgets", "scale: comma-separated budget `sizes` of the budget sweep")
	fs.IntVar(&cfg.ScaleLoad, "scale-load", cfg.ScaleLoad, "scale: `number` of buffers held at once in the budget sweep")
	fs.BoolVar(&cfg.JSON, "json", cfg.JSON, "print results as JSON instead of a table (and no progress line)")
	fs.StringVar(&cfg.Plot, "plot", cfg.Plot, "draw plots into image `file`s (.png or .svg) named after this one: -plot DIR/NAME.png writes DIR/uploads-NAME.png\n    \t(RSS over time of each implementation), DIR/scale-NAME.png (the scale curves), DIR/blobs-NAME.png (memory and hit ratio),\n    \tDIR/slow-NAME.png (RSS over time next to the harness) and DIR/shrink-NAME.png (RSS and MemoryInUse around the shrink), for the scenarios that run")
	fs.StringVar(&cfg.Trace, "trace", cfg.Trace, "write an execution trace of each child into `dir`ectory, for go tool trace (see tracetail.go);\n    \tthe uploads, shrink and diskwait reports show where each implementation's slowest writes spent their time")
	fs.StringVar(&cfg.Profile, "profile", cfg.Profile, "write a CPU profile, heap profiles and a mutex profile of each child into `dir`ectory, for go tool pprof (see child.go);\n    \tthe uploads and shrink reports show the lock contention the mutex profiles record")
	fs.StringVar(&cfg.Child, "child", "", "internal: run one implementation in this process and print its result as JSON")
	fs.Float64Var(&cfg.ChildZipf, "child-zipf", 0, "internal: the Zipf exponent of a cache child")
	fs.BoolVar(&cfg.ChildScan, "child-scan", false, "internal: a cache child runs the scan test")
	fs.BoolVar(&cfg.ChildSmall, "child-small", false, "internal: a cache child makes small reads")
	fs.StringVar(&cfg.SlowClient, "slow-client", "", "internal: run the clients of the slow scenario's HTTP variants against this address")
	fs.IntVar(&cfg.SlowClientUploads, "slow-client-uploads", 0, "internal: the uploads the slow clients send")
	fs.IntVar(&cfg.ChildBuffers, "child-buffers", 0, "internal: the buffers of a scale child")
	fs.Var((*byteSize)(&cfg.ChildBudget), "child-budget", "internal: the budget of a scale child")
	if err := fs.Parse(args); err != nil {
		return cfg, reportedError{err} // the flag package printed it
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	cfg.Piece = int(piece)
	cfg.MicroPiece = int(microPiece)
	cfg.Impls = splitList(*impls)
	cfg.ScanImpls = splitList(*scanImpls)
	cfg.SlowRead = int(slowRead)
	return cfg, cfg.validate()
}

// splitList splits a comma-separated list, dropping empty elements.
func splitList(s string) []string {
	var out []string
	for _, name := range strings.Split(s, ",") {
		if name = strings.TrimSpace(name); name != "" {
			out = append(out, name)
		}
	}
	return out
}

// floatList is a flag.Value for a comma-separated list of numbers.
type floatList []float64

func (l *floatList) String() string {
	var parts []string
	for _, f := range *l {
		parts = append(parts, strconv.FormatFloat(f, 'g', -1, 64))
	}
	return strings.Join(parts, ",")
}

func (l *floatList) Set(s string) error {
	var out []float64
	for _, part := range splitList(s) {
		f, err := strconv.ParseFloat(part, 64)
		if err != nil {
			return fmt.Errorf("bad number %q", part)
		}
		out = append(out, f)
	}
	*l = out
	return nil
}

// intList is a flag.Value for a comma-separated list of integers.
type intList []int

func (l *intList) String() string {
	var parts []string
	for _, n := range *l {
		parts = append(parts, strconv.Itoa(n))
	}
	return strings.Join(parts, ",")
}

func (l *intList) Set(s string) error {
	var out []int
	for _, part := range splitList(s) {
		n, err := strconv.Atoi(part)
		if err != nil {
			return fmt.Errorf("bad number %q", part)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}

// sizeList is a flag.Value for a comma-separated list of sizes.
type sizeList []int64

func (l *sizeList) String() string {
	var parts []string
	for _, n := range *l {
		parts = append(parts, strings.ReplaceAll(formatSize(n), " ", ""))
	}
	return strings.Join(parts, ",")
}

// bytes returns the list in plain bytes, for a child's flags.
func (l sizeList) bytes() string {
	var parts []string
	for _, n := range l {
		parts = append(parts, strconv.FormatInt(n, 10))
	}
	return strings.Join(parts, ",")
}

func (l *sizeList) Set(s string) error {
	var out []int64
	for _, part := range splitList(s) {
		n, err := parseSize(part)
		if err != nil {
			return err
		}
		out = append(out, n)
	}
	*l = out
	return nil
}

// reportedError is an error already shown to the user.
type reportedError struct{ error }

func (e reportedError) Unwrap() error { return e.error }

// usage prints the flags, except the hidden -child.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintf(w, "usage: go run ./bench [flags]\n\nRuns a workload against each implementation in a child process and prints a table.\n\nflags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "child" || strings.HasPrefix(f.Name, "child-") {
			return
		}
		name, text := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  -%s", f.Name)
		if name != "" {
			fmt.Fprintf(w, " %s", name)
		}
		fmt.Fprintf(w, "\n    \t%s", text)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	fmt.Fprintf(w, "\nscenarios:\n")
	for _, sc := range scenarios {
		fmt.Fprintf(w, "  %-10s %s\n", sc.name, sc.desc)
	}
	fmt.Fprintf(w, "  %-10s %s\n", allScenarios, "every scenario above, one after another")
}

func (cfg Config) validate() error {
	scs := cfg.selected()
	if len(scs) == 0 || cfg.Child != "" && cfg.Scenario == allScenarios {
		return fmt.Errorf("unknown -scenario %q (have %s)", cfg.Scenario, strings.Join(append(scenarioNames(), allScenarios), ", "))
	}
	names := cfg.Impls
	if cfg.Child != "" {
		names = []string{cfg.Child}
	}
	for _, name := range names {
		known := false
		for _, sc := range scs {
			known = known || hasVariant(sc, name)
		}
		if !known {
			var have []string
			for _, sc := range scs {
				have = append(have, variantNames(sc)...)
			}
			return fmt.Errorf("unknown implementation %q (have %s)", name, strings.Join(have, ", "))
		}
	}
	for _, name := range cfg.ScanImpls {
		if _, ok := lookupCacheVariant(name); !ok {
			return fmt.Errorf("unknown -scan-impl %q (have %s)", name, strings.Join(variantNames(scenario{impls: cacheVariantList()}), ", "))
		}
	}
	switch {
	case cfg.Budget <= 0:
		return errors.New("-budget must be positive")
	case cfg.Clients <= 0:
		return errors.New("-clients must be positive")
	case cfg.Total <= 0:
		return errors.New("-total must be positive")
	case cfg.MinSize <= 0 || cfg.MaxSize < cfg.MinSize:
		return errors.New("need 0 < -min-size <= -max-size")
	case cfg.Piece <= 0:
		return errors.New("-piece must be positive")
	case cfg.Threshold <= 0:
		return errors.New("-threshold must be positive")
	}
	if err := cfg.validateMicro(); err != nil {
		return err
	}
	if err := cfg.validateScale(); err != nil {
		return err
	}
	if err := cfg.validateBlobs(); err != nil {
		return err
	}
	if err := cfg.validateSlow(); err != nil {
		return err
	}
	if err := cfg.validateChurn(); err != nil {
		return err
	}
	if err := cfg.validateShrink(); err != nil {
		return err
	}
	if err := cfg.validateDiskWait(); err != nil {
		return err
	}
	if cfg.Plot != "" {
		if _, err := plotFormat(cfg.Plot); err != nil {
			return err
		}
	}
	return cfg.validateCache()
}

// childArgs returns the flags that make a child run job with cfg.
func (cfg Config) childArgs(job Job) []string {
	return []string{
		"-child", job.Impl,
		"-child-zipf", strconv.FormatFloat(job.Zipf, 'g', -1, 64),
		"-child-scan=" + strconv.FormatBool(job.Scan),
		"-child-small=" + strconv.FormatBool(job.Small),
		"-scenario", cfg.Scenario,
		"-budget", fmt.Sprint(cfg.Budget),
		"-clients", fmt.Sprint(cfg.Clients),
		"-total", fmt.Sprint(cfg.Total),
		"-min-size", fmt.Sprint(cfg.MinSize),
		"-max-size", fmt.Sprint(cfg.MaxSize),
		"-piece", fmt.Sprint(cfg.Piece),
		"-threshold", fmt.Sprint(cfg.Threshold),
		"-seed", fmt.Sprint(cfg.Seed),
		"-tempdir", cfg.TempDir,
		"-profile", cfg.Profile,
		"-trace", cfg.Trace,
		"-cache-budget", fmt.Sprint(cfg.CacheBudget),
		"-blobs", fmt.Sprint(cfg.Blobs),
		"-blob-min-size", fmt.Sprint(cfg.BlobMinSize),
		"-blob-max-size", fmt.Sprint(cfg.BlobMaxSize),
		"-reads", fmt.Sprint(cfg.Reads),
		"-zipf", (*floatList)(&cfg.Zipf).String(),
		"-scan-blobs", fmt.Sprint(cfg.ScanBlobs),
		"-scan-size", fmt.Sprint(cfg.ScanSize),
		"-scan-impl", strings.Join(cfg.ScanImpls, ","),
		"-small-read", fmt.Sprint(cfg.SmallRead),
		"-blobs-count", fmt.Sprint(cfg.BlobsCount),
		"-blobs-min-size", fmt.Sprint(cfg.BlobsMinSize),
		"-blobs-max-size", fmt.Sprint(cfg.BlobsMaxSize),
		"-blobs-budget", fmt.Sprint(cfg.BlobsBudget),
		"-blobs-reads", fmt.Sprint(cfg.BlobsReads),
		"-blobs-zipf", strconv.FormatFloat(cfg.BlobsZipf, 'g', -1, 64),
		"-blobs-fd-limit", fmt.Sprint(cfg.BlobsFDLimit),
		"-churn-buffers", fmt.Sprint(cfg.ChurnBuffers),
		"-churn-close", fmt.Sprint(cfg.ChurnClose),
		"-churn-new", fmt.Sprint(cfg.ChurnNew),
		"-churn-size", fmt.Sprint(cfg.ChurnSize),
		"-shrink-budget", fmt.Sprint(cfg.ShrinkBudget),
		"-shrink-to", fmt.Sprint(cfg.ShrinkTo),
		"-shrink-at", strconv.FormatFloat(cfg.ShrinkAt, 'g', -1, 64),
		"-diskwait-budget", fmt.Sprint(cfg.DiskWaitBudget),
		"-diskwait-deadline", cfg.DiskWaitDeadline.String(),
		"-diskwait-retries", fmt.Sprint(cfg.DiskWaitRetries),
		"-diskwait-backoff", cfg.DiskWaitBackoff.String(),
		"-slow-uploads", fmt.Sprint(cfg.SlowUploads),
		"-slow-http-uploads", fmt.Sprint(cfg.SlowHTTPUploads),
		"-slow-min-size", fmt.Sprint(cfg.SlowMinSize),
		"-slow-max-size", fmt.Sprint(cfg.SlowMaxSize),
		"-slow-read", fmt.Sprint(cfg.SlowRead),
		"-slow-pause", cfg.SlowPause.String(),
		"-slow-budget", fmt.Sprint(cfg.SlowBudget),
		"-micro-size", fmt.Sprint(cfg.MicroMemSize),
		"-micro-spill-size", fmt.Sprint(cfg.MicroSpillSize),
		"-micro-piece", fmt.Sprint(cfg.MicroPiece),
		"-micro-reps", fmt.Sprint(cfg.MicroReps),
		"-micro-time", cfg.MicroTime.String(),
		"-scale-bytes", fmt.Sprint(cfg.ScaleBytes),
		"-scale-buffers", (*intList)(&cfg.ScaleBuffers).String(),
		"-scale-budgets", sizeList(cfg.ScaleBudgets).bytes(),
		"-scale-load", fmt.Sprint(cfg.ScaleLoad),
		"-child-buffers", fmt.Sprint(job.Buffers),
		"-child-budget", fmt.Sprint(job.Budget),
	}
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		if !errors.As(err, new(reportedError)) {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(2)
	}
	if cfg.SlowClient != "" {
		os.Exit(slowClientMain(cfg, os.Stdin, os.Stdout, os.Stderr))
	}
	if cfg.Child != "" {
		os.Exit(childMain(cfg, os.Stdout, os.Stderr))
	}
	os.Exit(parentMain(cfg, os.Stdout, os.Stderr))
}

// Run is the outcome of one invocation of bench, as printed by -json.
type Run struct {
	Scenario  string    `json:"scenario"`
	Config    Config    `json:"config"`
	GoVersion string    `json:"go_version"`
	GOOS      string    `json:"goos"`
	GOARCH    string    `json:"goarch"`
	NumCPU    int       `json:"num_cpu"`
	MaxProcs  int       `json:"gomaxprocs"`
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"` // whole run, all children
	Results   []Result  `json:"results"`
	Failures  []string  `json:"failures,omitempty"`
	// Cache is what the parent computes for the cache scenario.
	Cache *CacheRun `json:"cache,omitempty"`
}

// parentMain runs every selected scenario, each implementation in a child
// process, and reports. With -json it prints one JSON Run per scenario. On
// a terminal (and without -json) it keeps a progress line on stderr. It
// returns the exit code.
func parentMain(cfg Config, stdout, stderr io.Writer) int {
	if cfg.TempDir != "" {
		abs, err := filepath.Abs(cfg.TempDir)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 2
		}
		cfg.TempDir = abs
	}
	for _, dir := range []*string{&cfg.Profile, &cfg.Trace} {
		if *dir == "" {
			continue
		}
		abs, err := filepath.Abs(*dir)
		if err == nil {
			err = os.MkdirAll(abs, 0o755)
		}
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 2
		}
		*dir = abs
	}
	if cfg.Plot != "" {
		plots := false
		for _, sc := range cfg.selected() {
			plots = plots || sc.plot != nil
		}
		if !plots {
			fmt.Fprintf(stderr, "bench: -plot: scenario %s has nothing to plot (uploads, scale, blobs, slow and shrink do)\n", cfg.Scenario)
		}
	}
	prog := newProgress(stderr, !cfg.JSON && isTerminal(stderr))
	defer prog.close()
	code, printed := 0, false
	for _, sc := range cfg.selected() {
		c := cfg
		c.Scenario = sc.name
		names := c.implsOf(sc)
		if len(names) == 0 {
			prog.clear()
			fmt.Fprintf(stderr, "bench: %s: -impl selects none of its implementations (%s); skipped\n", sc.name, strings.Join(variantNames(sc), ", "))
			continue
		}
		if printed && !cfg.JSON {
			fmt.Fprintln(stdout)
		}
		run, rc := runScenario(sc, c, names, stdout, stderr, prog)
		code = max(code, rc)
		printed = true
		if cfg.Plot != "" && sc.plot != nil && len(run.Results) > 0 {
			path := plotPath(cfg.Plot, sc.name)
			if err := sc.plot(path, run); err != nil {
				prog.clear()
				fmt.Fprintf(stderr, "bench: plot %s: %v\n", path, err)
				code = max(code, 1)
			} else if !cfg.JSON {
				fmt.Fprintf(stdout, "Plot: %s\n", path)
			}
		}
	}
	return code
}

// runScenario runs the jobs of sc for the implementations names, each in a
// child process, and reports. It returns the run and the exit code.
func runScenario(sc scenario, cfg Config, names []string, stdout, stderr io.Writer, prog *progress) (Run, int) {
	cfg.Impls = names // as run, for the JSON
	run := Run{
		Scenario:  sc.name,
		Config:    cfg,
		GoVersion: runtime.Version(),
		GOOS:      runtime.GOOS,
		GOARCH:    runtime.GOARCH,
		NumCPU:    runtime.NumCPU(),
		MaxProcs:  runtime.GOMAXPROCS(0),
		Started:   time.Now(),
	}
	if sc.prepare != nil {
		prog.set(fmt.Sprintf("%s: preparing", sc.name), "")
		if err := sc.prepare(cfg, &run); err != nil {
			prog.clear()
			fmt.Fprintf(stderr, "bench: %s: %v\n", sc.name, err)
			run.Failures = append(run.Failures, err.Error())
		}
	}
	jobs := sc.jobs(cfg, names)
	last := ""
	for i, job := range jobs {
		note := ""
		if last != "" {
			note = "last: " + last
		}
		prog.set(fmt.Sprintf("%s %d/%d %s", sc.name, i+1, len(jobs), jobTitle(job)), note)
		res, childStderr, err := runChild(cfg, job)
		if res.Impl != "" {
			finishProfile(cfg, job, &res)
			finishTrace(cfg, job, &res)
			if sc.finish != nil {
				sc.finish(cfg, job, &res)
			}
		}
		var failure string
		switch {
		case res.Impl != "" && res.problem() != "":
			failure = res.problem()
		case err != nil:
			failure = err.Error()
		}
		if failure != "" || len(childStderr) > 0 {
			prog.clear()
		}
		if failure != "" {
			fmt.Fprintf(stderr, "bench: %s %d/%d %s FAILED: %s\n", sc.name, i+1, len(jobs), jobTitle(job), failure)
			run.Failures = append(run.Failures, fmt.Sprintf("%s: %s", jobTitle(job), failure))
			last = jobTitle(job) + " FAILED"
		} else {
			last = jobTitle(job) + " " + sc.progress(res)
		}
		stderr.Write(childStderr)
		if res.Impl != "" {
			run.Results = append(run.Results, res)
		}
	}
	prog.clear()
	run.Seconds = time.Since(run.Started).Seconds()
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(run); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return run, 1
		}
	} else {
		sc.report(stdout, run)
	}
	if len(run.Failures) > 0 {
		for _, f := range run.Failures {
			fmt.Fprintln(stderr, "bench: FAIL", f)
		}
		return run, 1
	}
	return run, 0
}

// jobTitle names a job in progress lines and failures.
func jobTitle(j Job) string {
	t := j.Label
	if j.Zipf != 0 {
		t += fmt.Sprintf(" s=%g", j.Zipf)
	}
	if j.Scan {
		t += " +scan"
	}
	if j.Small {
		t += " small reads"
	}
	if j.Buffers != 0 {
		t += fmt.Sprintf(" %s buffers, budget %s", commas(int64(j.Buffers)), formatSize(j.Budget))
	}
	return t
}

// byteSize is a flag.Value for a number of bytes: a plain number, or a
// number with a unit — B, KiB, MiB, GiB, TiB (or K, M, G, T, also binary)
// and KB, MB, GB, TB (decimal) — case-insensitive, as in 64MiB or 1.5GiB.
type byteSize int64

func (b *byteSize) String() string { return formatSize(int64(*b)) }

func (b *byteSize) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// parseSize parses a byte count such as "67108864", "64MiB" or "1.5 GiB".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	mult, ok := sizeUnits[strings.ToLower(strings.TrimSpace(t[i:]))]
	if i == 0 || !ok {
		return 0, fmt.Errorf("bad size %q: want bytes or a number with a unit like 64MiB", s)
	}
	if mult == 1 { // whole bytes
		n, err := strconv.ParseInt(t[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad size %q", s)
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(t[:i], 64)
	if err != nil || f*mult >= 1<<63 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(f*mult + 0.5), nil
}
