// Command bench measures spool doing its main job — holding many concurrent
// uploads under one memory budget — next to the plain alternatives: a
// bytes.Buffer per upload and a temporary file per upload.
//
// Run it from the repository root:
//
//	go run ./bench                 # the default workload, in under a minute
//	go run ./bench -budget 16MiB -impl spool,bytes
//	go run ./bench -json           # machine-readable results
//	go run ./bench -scenario cache # spool as a cache: eviction policies under Zipf reads
//	go run ./bench -scenario all   # every scenario, one after another
//
// Each implementation runs in a child process of its own (the bench binary
// re-executed with the hidden flag -child NAME), so that its peak RSS is its
// own. The child prints one JSON Result on stdout; the parent adds the
// child's CPU time and prints a table. bench exits non-zero if any upload
// read back wrong, any operation failed or any child failed.
//
// Files: main.go (flags, orchestration), workload.go (the uploads
// scenario), impl.go (the implementations), child.go (the child-process
// protocol and the /proc measurements), report.go (the table), cache.go
// (the cache scenario and its offline greedy ceiling), cache_report.go
// (its tables).
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
	Seed     uint64   `json:"seed"`     // seed of upload sizes and contents
	TempDir  string   `json:"tempdir"`  // directory for spill and temporary files; "" = os.TempDir()

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

	JSON  bool   `json:"-"` // print JSON instead of a table (parent only)
	Child string `json:"-"` // hidden: run this implementation in this process and print JSON
	// Hidden, for a child of the cache scenario: the Zipf exponent of its
	// run, and whether it runs the scan test.
	ChildZipf float64 `json:"-"`
	ChildScan bool    `json:"-"`
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

		CacheBudget: 256 << 20,
		Blobs:       2000,
		BlobMinSize: 1 << 10,
		BlobMaxSize: 4 << 20,
		Reads:       200_000,
		Zipf:        []float64{1.1, 0.8},
		ScanBlobs:   256,
		ScanSize:    4 << 20,
		ScanImpls:   []string{"lru", "lfu", "lfu-ristretto"},
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
	prepare func(cfg Config, run *Run)
	// run runs one job in this process and returns its measurements
	// (without CPU time and RSS, which the child and parent fill in).
	run func(cfg Config, job Job) (Result, error)
	// progress summarizes a result for the parent's progress line.
	progress func(Result) string
	// report prints the run as tables.
	report func(w io.Writer, run Run)
}

// A variant is an implementation of a scenario, as named by -impl.
type variant struct {
	Name  string // for -impl and JSON
	Label string // for the table
}

// A Job is one child run: an implementation with the scenario's parameters
// for that run.
type Job struct {
	Impl  string
	Label string
	Zipf  float64 // cache: Zipf exponent of the reads
	Scan  bool    // cache: with the scan in the middle
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
			return fmt.Sprintf("%6.2f s, %.2f GB/s", r.WallSeconds, r.GBps())
		},
		report: printReport,
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
	fs.Var((*byteSize)(&cfg.Budget), "budget", "uploads: spool memory budget, a `size`: bytes, or a number with a unit (64MiB, 1.5GiB, 500MB)")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "uploads: concurrent client goroutines")
	fs.Var((*byteSize)(&cfg.Total), "total", "uploads: total upload `size` to aim for; the upload count is the smallest that reaches it with -seed")
	fs.Var((*byteSize)(&cfg.MinSize), "min-size", "uploads: smallest upload `size`")
	fs.Var((*byteSize)(&cfg.MaxSize), "max-size", "uploads: largest upload `size`")
	piece := byteSize(cfg.Piece)
	fs.Var(&piece, "piece", "uploads: `size` of each Write of an upload")
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
	fs.BoolVar(&cfg.JSON, "json", cfg.JSON, "print results as JSON instead of a table")
	fs.StringVar(&cfg.Child, "child", "", "internal: run one implementation in this process and print its result as JSON")
	fs.Float64Var(&cfg.ChildZipf, "child-zipf", 0, "internal: the Zipf exponent of a cache child")
	fs.BoolVar(&cfg.ChildScan, "child-scan", false, "internal: a cache child runs the scan test")
	if err := fs.Parse(args); err != nil {
		return cfg, reportedError{err} // the flag package printed it
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	cfg.Piece = int(piece)
	cfg.Impls = splitList(*impls)
	cfg.ScanImpls = splitList(*scanImpls)
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
	}
	return cfg.validateCache()
}

// childArgs returns the flags that make a child run job with cfg.
func (cfg Config) childArgs(job Job) []string {
	return []string{
		"-child", job.Impl,
		"-child-zipf", strconv.FormatFloat(job.Zipf, 'g', -1, 64),
		"-child-scan=" + strconv.FormatBool(job.Scan),
		"-scenario", cfg.Scenario,
		"-budget", fmt.Sprint(cfg.Budget),
		"-clients", fmt.Sprint(cfg.Clients),
		"-total", fmt.Sprint(cfg.Total),
		"-min-size", fmt.Sprint(cfg.MinSize),
		"-max-size", fmt.Sprint(cfg.MaxSize),
		"-piece", fmt.Sprint(cfg.Piece),
		"-seed", fmt.Sprint(cfg.Seed),
		"-tempdir", cfg.TempDir,
		"-cache-budget", fmt.Sprint(cfg.CacheBudget),
		"-blobs", fmt.Sprint(cfg.Blobs),
		"-blob-min-size", fmt.Sprint(cfg.BlobMinSize),
		"-blob-max-size", fmt.Sprint(cfg.BlobMaxSize),
		"-reads", fmt.Sprint(cfg.Reads),
		"-zipf", (*floatList)(&cfg.Zipf).String(),
		"-scan-blobs", fmt.Sprint(cfg.ScanBlobs),
		"-scan-size", fmt.Sprint(cfg.ScanSize),
		"-scan-impl", strings.Join(cfg.ScanImpls, ","),
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
// process, and reports. With -json it prints one JSON Run per scenario. It
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
	code, printed := 0, false
	for _, sc := range cfg.selected() {
		c := cfg
		c.Scenario = sc.name
		names := c.implsOf(sc)
		if len(names) == 0 {
			fmt.Fprintf(stderr, "bench: %s: -impl selects none of its implementations (%s); skipped\n", sc.name, strings.Join(variantNames(sc), ", "))
			continue
		}
		if printed && !cfg.JSON {
			fmt.Fprintln(stdout)
		}
		code = max(code, runScenario(sc, c, names, stdout, stderr))
		printed = true
	}
	return code
}

// runScenario runs the jobs of sc for the implementations names, each in a
// child process, and reports. It returns the exit code.
func runScenario(sc scenario, cfg Config, names []string, stdout, stderr io.Writer) int {
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
		sc.prepare(cfg, &run)
	}
	jobs := sc.jobs(cfg, names)
	for i, job := range jobs {
		res, childStderr, err := runChild(cfg, job)
		fmt.Fprintf(stderr, "bench: %s %d/%d %-13s ", sc.name, i+1, len(jobs), jobTitle(job))
		var failure string
		switch {
		case res.Impl != "" && res.problem() != "":
			failure = res.problem()
		case err != nil:
			failure = err.Error()
		}
		if failure != "" {
			fmt.Fprintf(stderr, "FAILED: %s\n", failure)
			run.Failures = append(run.Failures, fmt.Sprintf("%s: %s", jobTitle(job), failure))
		} else {
			fmt.Fprintf(stderr, "%s\n", sc.progress(res))
		}
		stderr.Write(childStderr)
		if res.Impl != "" {
			run.Results = append(run.Results, res)
		}
	}
	run.Seconds = time.Since(run.Started).Seconds()
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(run); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
	} else {
		sc.report(stdout, run)
	}
	if len(run.Failures) > 0 {
		for _, f := range run.Failures {
			fmt.Fprintln(stderr, "bench: FAIL", f)
		}
		return 1
	}
	return 0
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
