// Command bench measures spool doing its main job — holding many concurrent
// uploads under one memory budget — next to the plain alternatives: a
// bytes.Buffer per upload and a temporary file per upload.
//
// Run it from the repository root:
//
//	go run ./bench                 # the default workload, in under a minute
//	go run ./bench -budget 16MiB -impl spool,bytes
//	go run ./bench -json           # machine-readable results
//
// Each implementation runs in a child process of its own (the bench binary
// re-executed with the hidden flag -child NAME), so that its peak RSS is its
// own. The child prints one JSON Result on stdout; the parent adds the
// child's CPU time and prints a table. bench exits non-zero if any upload
// read back wrong, any operation failed or any child failed.
//
// Files: main.go (flags, orchestration), workload.go (the uploads
// scenario), impl.go (the implementations), child.go (the child-process
// protocol and the /proc measurements), report.go (the table).
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
	Scenario string   `json:"scenario"` // name of a scenario, see scenarios
	Impls    []string `json:"impls"`    // implementations to run, in order (parent only)
	Budget   int64    `json:"budget"`   // spool memory budget, bytes
	Clients  int      `json:"clients"`  // concurrent goroutines
	Total    int64    `json:"total"`    // target total upload bytes; the upload count follows
	MinSize  int64    `json:"min_size"` // smallest upload, bytes
	MaxSize  int64    `json:"max_size"` // largest upload, bytes
	Piece    int      `json:"piece"`    // bytes per Write
	Seed     uint64   `json:"seed"`     // seed of upload sizes and contents
	TempDir  string   `json:"tempdir"`  // directory for spill and temporary files; "" = os.TempDir()
	JSON     bool     `json:"-"`        // print JSON instead of a table (parent only)
	Child    string   `json:"-"`        // hidden: run this implementation in this process and print JSON
}

// defaultConfig is the embedded default workload of `go run ./bench`.
func defaultConfig() Config {
	return Config{
		Scenario: "uploads",
		Impls:    implNames(),
		Budget:   64 << 20,
		Clients:  200,
		Total:    3 << 29, // 1.5 GiB
		MinSize:  4 << 10,
		MaxSize:  32 << 20,
		Piece:    32 << 10,
		Seed:     1,
	}
}

// A scenario is one workload. Only "uploads" exists so far; later ones
// (cache, micro, scale) register here and are selected with -scenario.
type scenario struct {
	name string
	desc string
	// run runs the scenario with one implementation in this process and
	// returns its measurements (without CPU time and RSS, which the child
	// and parent fill in).
	run func(cfg Config, impl Impl) (Result, error)
}

var scenarios = []scenario{
	{name: "uploads", desc: "concurrent uploads written in pieces, read back and checksummed", run: runUploads},
}

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

// parseFlags parses args (without the program name) into a Config.
func parseFlags(args []string, stderr io.Writer) (Config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(fs) }
	fs.StringVar(&cfg.Scenario, "scenario", cfg.Scenario, "`name` of the workload to run: "+strings.Join(scenarioNames(), "|"))
	impls := fs.String("impl", strings.Join(cfg.Impls, ","), "comma-separated `list` of implementations to run, in order: "+strings.Join(implNames(), ","))
	fs.Var((*byteSize)(&cfg.Budget), "budget", "spool memory budget, a `size`: bytes, or a number with a unit (64MiB, 1.5GiB, 500MB)")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent client goroutines")
	fs.Var((*byteSize)(&cfg.Total), "total", "total upload `size` to aim for; the upload count is the smallest that reaches it with -seed")
	fs.Var((*byteSize)(&cfg.MinSize), "min-size", "smallest upload `size`")
	fs.Var((*byteSize)(&cfg.MaxSize), "max-size", "largest upload `size`")
	piece := byteSize(cfg.Piece)
	fs.Var(&piece, "piece", "`size` of each Write of an upload")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the upload sizes and contents")
	fs.StringVar(&cfg.TempDir, "tempdir", cfg.TempDir, "`dir`ectory for spill and temporary files (default os.TempDir())")
	fs.BoolVar(&cfg.JSON, "json", cfg.JSON, "print results as JSON instead of a table")
	fs.StringVar(&cfg.Child, "child", "", "internal: run one implementation in this process and print its result as JSON")
	if err := fs.Parse(args); err != nil {
		return cfg, reportedError{err} // the flag package printed it
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	cfg.Piece = int(piece)
	cfg.Impls = nil
	for _, name := range strings.Split(*impls, ",") {
		if name = strings.TrimSpace(name); name != "" {
			cfg.Impls = append(cfg.Impls, name)
		}
	}
	return cfg, cfg.validate()
}

// reportedError is an error already shown to the user.
type reportedError struct{ error }

func (e reportedError) Unwrap() error { return e.error }

// usage prints the flags, except the hidden -child.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintf(w, "usage: go run ./bench [flags]\n\nRuns a workload against each implementation in a child process and prints a table.\n\nflags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "child" {
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
}

func (cfg Config) validate() error {
	if _, ok := lookupScenario(cfg.Scenario); !ok {
		return fmt.Errorf("unknown -scenario %q (have %s)", cfg.Scenario, strings.Join(scenarioNames(), ", "))
	}
	names := cfg.Impls
	if cfg.Child != "" {
		names = []string{cfg.Child}
	}
	if len(names) == 0 {
		return errors.New("-impl selects no implementation")
	}
	for _, name := range names {
		if _, ok := lookupImpl(name); !ok {
			return fmt.Errorf("unknown implementation %q (have %s)", name, strings.Join(implNames(), ", "))
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
	return nil
}

// childArgs returns the flags that make a child run impl with cfg.
func (cfg Config) childArgs(impl string) []string {
	return []string{
		"-child", impl,
		"-scenario", cfg.Scenario,
		"-budget", fmt.Sprint(cfg.Budget),
		"-clients", fmt.Sprint(cfg.Clients),
		"-total", fmt.Sprint(cfg.Total),
		"-min-size", fmt.Sprint(cfg.MinSize),
		"-max-size", fmt.Sprint(cfg.MaxSize),
		"-piece", fmt.Sprint(cfg.Piece),
		"-seed", fmt.Sprint(cfg.Seed),
		"-tempdir", cfg.TempDir,
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
}

// parentMain runs every selected implementation in a child process and
// reports. It returns the exit code.
func parentMain(cfg Config, stdout, stderr io.Writer) int {
	sc, _ := lookupScenario(cfg.Scenario)
	if cfg.TempDir != "" {
		abs, err := filepath.Abs(cfg.TempDir)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 2
		}
		cfg.TempDir = abs
	}
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
	for i, name := range cfg.Impls {
		impl, _ := lookupImpl(name)
		res, childStderr, err := runChild(cfg, impl)
		fmt.Fprintf(stderr, "bench: %s %d/%d %-13s ", sc.name, i+1, len(cfg.Impls), impl.Label)
		var failure string
		switch {
		case res.Impl != "" && res.problem() != "":
			failure = res.problem()
		case err != nil:
			failure = err.Error()
		}
		if failure != "" {
			fmt.Fprintf(stderr, "FAILED: %s\n", failure)
			run.Failures = append(run.Failures, fmt.Sprintf("%s: %s", impl.Name, failure))
		} else {
			fmt.Fprintf(stderr, "%6.2f s, %.2f GB/s\n", res.WallSeconds, res.GBps())
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
		printReport(stdout, run)
	}
	if len(run.Failures) > 0 {
		for _, f := range run.Failures {
			fmt.Fprintln(stderr, "bench: FAIL", f)
		}
		return 1
	}
	return 0
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
