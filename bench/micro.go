package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/crc64nvme"
	"github.com/spoolkit/spool"
)

// The micro scenario: what one operation of spool costs next to what the
// same work costs without spool, measured in the same process, in the
// same run, interleaved repetition by repetition so that drift of the
// machine hits both alike. Each operation is one job (one child):
//
//   - memory: write cfg.MicroMemSize bytes in cfg.MicroPiece pieces to a
//     buffer in memory, Seek to the start, read them back in pieces of the
//     same size. spool (one Buffer reused: Truncate(0), Seek(0); and a new
//     Buffer per op, closed after it) against a reused bytes.Buffer (Reset)
//     as the peer and copy() into and out of a reused slice as the
//     physical limit.
//   - spilled: the same with cfg.MicroSpillSize bytes on disk: a new spool
//     Buffer rolled over before the first write (Rollover), against a raw
//     *os.File made by os.CreateTemp and unlinked at once.
//   - new: Manager.NewBuffer and Buffer.Close of an empty buffer, with its
//     allocations, against os.CreateTemp+Close+Remove, what a temporary
//     file per upload costs.
//
// Each case is timed in cfg.MicroReps repetitions of about cfg.MicroTime
// (a number of ops fixed per case by calibration); the medians are
// reported, and the ratios are those of the medians.

// microVariants are the operations of the micro scenario.
var microVariants = []variant{
	{Name: "memory", Label: "in-memory write+read"},
	{Name: "spilled", Label: "spilled round trip"},
	{Name: "new", Label: "NewBuffer+Close"},
}

func (cfg Config) validateMicro() error {
	switch {
	case cfg.MicroMemSize <= 0 || cfg.MicroMemSize > 1<<34:
		return errors.New("-micro-size must be positive and at most 16 GiB")
	case cfg.MicroSpillSize <= 0 || cfg.MicroSpillSize > 1<<40:
		return errors.New("-micro-spill-size must be positive")
	case cfg.MicroPiece <= 0 || cfg.MicroPiece > 64<<20:
		return errors.New("-micro-piece must be positive and at most 64 MiB")
	case cfg.MicroReps <= 0:
		return errors.New("-micro-reps must be positive")
	case cfg.MicroTime <= 0:
		return errors.New("-micro-time must be positive")
	}
	return nil
}

// Roles of the cases of a micro measurement. roleGuarded is a baseline
// that pays for what spool must guarantee and its peer or physical limit
// does not: a lock for concurrent use in memory, a CRC-64/NVME of every 64 KiB
// block, checked on read, on disk.
const (
	roleSpool    = "spool"
	rolePeer     = "peer"
	rolePhysical = "physical"
	roleGuarded  = "guarded"
)

// MicroResult is what a child of the micro scenario measures.
type MicroResult struct {
	Op    string      `json:"op"`    // memory, spilled or new
	Bytes int64       `json:"bytes"` // written and read back per op; 0 for new
	Piece int         `json:"piece"` // bytes per Write and Read
	Reps  int         `json:"reps"`
	Cases []MicroCase `json:"cases"`
}

// MicroCase is one timed case of a micro measurement.
type MicroCase struct {
	Name        string    `json:"name"`
	Label       string    `json:"label"`
	Role        string    `json:"role"`        // roleSpool, rolePeer, rolePhysical or roleGuarded
	OpsPerRep   int       `json:"ops_per_rep"` // ops timed together in each repetition
	NsPerOp     []float64 `json:"ns_per_op"`   // of each repetition
	Median      float64   `json:"median_ns_per_op"`
	AllocsPerOp float64   `json:"allocs_per_op"`
}

// GBps is the throughput of the median op in decimal GB/s of payload.
func (c MicroCase) GBps(bytes int64) float64 {
	if c.Median <= 0 || bytes <= 0 {
		return 0
	}
	return float64(bytes) / c.Median
}

// Case returns the case named name, or nil.
func (m *MicroResult) Case(name string) *MicroCase {
	if m == nil {
		return nil
	}
	for i := range m.Cases {
		if m.Cases[i].Name == name {
			return &m.Cases[i]
		}
	}
	return nil
}

// microCase is a case to time: op does one operation.
type microCase struct {
	name, label, role string
	op                func() error
}

// runMicro is the run function of the micro scenario.
func runMicro(cfg Config, job Job) (Result, error) {
	dir := cfg.TempDir
	if dir == "" {
		dir = os.TempDir()
	}
	mr := &MicroResult{Op: job.Impl, Piece: cfg.MicroPiece, Reps: cfg.MicroReps}
	var cases []microCase
	var check func() error // after the timing: that the op did what it should
	var cleanup func()
	switch job.Impl {
	case "memory":
		mr.Bytes = cfg.MicroMemSize
		cs, chk, done, err := memoryCases(cfg, dir)
		if err != nil {
			return Result{}, err
		}
		cases, check, cleanup = cs, chk, done
	case "spilled":
		mr.Bytes = cfg.MicroSpillSize
		cs, chk, done, err := spilledCases(cfg, dir)
		if err != nil {
			return Result{}, err
		}
		cases, check, cleanup = cs, chk, done
	case "new":
		cs, done, err := newCloseCases(dir)
		if err != nil {
			return Result{}, err
		}
		cases, cleanup = cs, done
	default:
		return Result{}, fmt.Errorf("unknown micro operation %q", job.Impl)
	}
	defer cleanup()

	res := Result{Scenario: "micro", Impl: job.Impl, Label: job.Label, Clients: 1, Micro: mr}
	start := time.Now()
	measured, err := timeCases(cases, cfg.MicroReps, cfg.MicroTime)
	res.WallSeconds = time.Since(start).Seconds()
	if err == nil && check != nil {
		err = check()
	}
	if err != nil {
		res.Errors++
		res.FirstError = err.Error()
	}
	mr.Cases = measured
	return res, nil
}

// timeCases calibrates each case to about repTime per repetition, then
// times reps repetitions of every case, rotating the order each time, and
// counts each case's allocations per op.
func timeCases(cases []microCase, reps int, repTime time.Duration) ([]MicroCase, error) {
	out := make([]MicroCase, len(cases))
	for i, c := range cases {
		out[i] = MicroCase{Name: c.name, Label: c.label, Role: c.role}
		// Warm up (chunk pools, page cache, branch predictors), then
		// calibrate on a run long enough to time.
		if err := c.op(); err != nil {
			return out, fmt.Errorf("%s: %w", c.label, err)
		}
		n := 1
		for {
			d, err := timeOps(c.op, n)
			if err != nil {
				return out, fmt.Errorf("%s: %w", c.label, err)
			}
			if d >= repTime/8 || n >= 1<<30 {
				n = max(1, int(float64(n)*float64(repTime)/float64(max(d, 1))))
				break
			}
			n *= 4
		}
		out[i].OpsPerRep = n
	}
	for rep := range reps {
		for k := range cases {
			i := (k + rep) % len(cases)
			d, err := timeOps(cases[i].op, out[i].OpsPerRep)
			if err != nil {
				return out, fmt.Errorf("%s: %w", cases[i].label, err)
			}
			out[i].NsPerOp = append(out[i].NsPerOp, float64(d.Nanoseconds())/float64(out[i].OpsPerRep))
		}
	}
	for i, c := range cases {
		out[i].Median = median(out[i].NsPerOp)
		a, err := allocsPerOp(c.op, min(out[i].OpsPerRep, 1000))
		if err != nil {
			return out, fmt.Errorf("%s: %w", c.label, err)
		}
		out[i].AllocsPerOp = a
	}
	return out, nil
}

func timeOps(op func() error, n int) (time.Duration, error) {
	start := time.Now()
	for range n {
		if err := op(); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// allocsPerOp returns the heap allocations of n ops, per op.
func allocsPerOp(op func() error, n int) (float64, error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		if err := op(); err != nil {
			return 0, err
		}
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(n), nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// payload returns a piece of deterministic bytes.
func payload(n int) []byte {
	p := make([]byte, n)
	g := newGen(0x5b00_1b)
	g.fill(p)
	return p
}

// writeReadBack writes total bytes to rw in pieces of p, seeks back to the
// start, and reads total bytes back into q, piece by piece.
func writeReadBack(rw io.ReadWriteSeeker, p, q []byte, total int64) error {
	for n := int64(0); n < total; {
		k, err := rw.Write(p[:min(int64(len(p)), total-n)])
		n += int64(k)
		if err != nil {
			return err
		}
	}
	if _, err := rw.Seek(0, io.SeekStart); err != nil {
		return err
	}
	for n := int64(0); n < total; {
		k, err := rw.Read(q[:min(int64(len(q)), total-n)])
		n += int64(k)
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("read back %d of %d bytes", n, total)
			}
			return err
		}
	}
	return nil
}

// noSeek makes an io.ReadWriter an io.ReadWriteSeeker whose Seek does
// nothing: a bytes.Buffer reads from the start of what was written
// without seeking.
type noSeek struct {
	io.ReadWriter
}

func (noSeek) Seek(int64, int) (int64, error) { return 0, nil }

// fileRoundTrip writes and reads back size bytes through wrap of a
// temporary file in dir, unlinked at once, then closes it.
func fileRoundTrip(dir string, wrap func(*os.File) io.ReadWriteSeeker, p, q []byte, size int64) error {
	f, err := os.CreateTemp(dir, "spoolbench-raw-*")
	if err != nil {
		return err
	}
	err = os.Remove(f.Name())
	if err == nil {
		err = writeReadBack(wrap(f), p, q, size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// lockedBuffer is a bytes.Buffer behind a mutex: the least a buffer safe
// for concurrent use pays.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Read(p)
}

func (l *lockedBuffer) reset() {
	l.mu.Lock()
	l.b.Reset()
	l.mu.Unlock()
}

// crcFile is a file that keeps the CRC-64/NVME of every piece written to
// it and checks it when the piece is read back, as spool does per 64 KiB
// block: it must be written and read in the same pieces.
type crcFile struct {
	f    *os.File
	sums []uint64
	next int // index of the piece Read returns next
}

func (c *crcFile) Write(p []byte) (int, error) {
	c.sums = append(c.sums, crc64nvme.Checksum(p))
	return c.f.Write(p)
}

func (c *crcFile) Read(p []byte) (int, error) {
	n, err := io.ReadFull(c.f, p)
	if n == 0 {
		return 0, err
	}
	if c.next >= len(c.sums) || crc64nvme.Checksum(p[:n]) != c.sums[c.next] {
		return n, fmt.Errorf("piece %d: checksum mismatch", c.next)
	}
	c.next++
	return n, nil
}

func (c *crcFile) Seek(off int64, whence int) (int64, error) {
	if off != 0 || whence != io.SeekStart {
		return 0, errors.New("crcFile seeks only to the start")
	}
	c.next = 0
	return c.f.Seek(0, io.SeekStart)
}

// memoryCases returns the cases of the in-memory write+read.
func memoryCases(cfg Config, dir string) ([]microCase, func() error, func(), error) {
	size, piece := cfg.MicroMemSize, cfg.MicroPiece
	p, q := payload(piece), make([]byte, piece)
	// A budget that holds the whole payload with room to spare.
	m, err := spool.NewManager(spool.Options{MemoryBudget: 2*size + 2*spool.DefaultChunkSize, TempDir: dir})
	if err != nil {
		return nil, nil, nil, err
	}
	reused, err := m.NewBuffer()
	if err != nil {
		m.Close()
		return nil, nil, nil, err
	}
	var bb bytes.Buffer
	bb.Grow(int(size))
	var lb lockedBuffer
	lb.b.Grow(int(size))
	region := make([]byte, size)
	cases := []microCase{
		{name: "spool", label: "spool, Buffer reused", role: roleSpool, op: func() error {
			if err := reused.Truncate(0); err != nil {
				return err
			}
			if _, err := reused.Seek(0, io.SeekStart); err != nil {
				return err
			}
			return writeReadBack(reused, p, q, size)
		}},
		{name: "spool-new", label: "spool, new Buffer per op", role: roleSpool, op: func() error {
			b, err := m.NewBuffer()
			if err != nil {
				return err
			}
			err = writeReadBack(b, p, q, size)
			if cerr := b.Close(); err == nil {
				err = cerr
			}
			return err
		}},
		{name: "bytes", label: "bytes.Buffer, reused", role: rolePeer, op: func() error {
			bb.Reset()
			return writeReadBack(noSeek{&bb}, p, q, size)
		}},
		{name: "bytes-mutex", label: "bytes.Buffer+sync.Mutex, reused", role: roleGuarded, op: func() error {
			lb.reset()
			return writeReadBack(noSeek{&lb}, p, q, size)
		}},
		{name: "copy", label: "copy()", role: rolePhysical, op: func() error {
			for off := int64(0); off < size; off += int64(piece) {
				copy(region[off:], p)
			}
			for off := int64(0); off < size; off += int64(piece) {
				copy(q, region[off:])
			}
			return nil
		}},
	}
	check := func() error {
		if st := m.Stats(); st.Spills != 0 || reused.OnDisk() {
			return fmt.Errorf("in-memory case spilled: %d rollovers", st.Spills)
		}
		return nil
	}
	return cases, check, func() { m.Close() }, nil
}

// spilledCases returns the cases of the spilled round trip.
func spilledCases(cfg Config, dir string) ([]microCase, func() error, func(), error) {
	size, piece := cfg.MicroSpillSize, cfg.MicroPiece
	p, q := payload(piece), make([]byte, piece)
	m, err := spool.NewManager(spool.Options{TempDir: dir})
	if err != nil {
		return nil, nil, nil, err
	}
	cases := []microCase{
		{name: "spool", label: "spool, Buffer on disk", role: roleSpool, op: func() error {
			b, err := m.NewBuffer()
			if err != nil {
				return err
			}
			err = b.Rollover()
			if err == nil {
				err = writeReadBack(b, p, q, size)
			}
			if err == nil && !b.OnDisk() {
				err = errors.New("buffer not on disk")
			}
			if cerr := b.Close(); err == nil {
				err = cerr
			}
			return err
		}},
		{name: "file", label: "raw *os.File", role: rolePhysical, op: func() error {
			return fileRoundTrip(dir, func(f *os.File) io.ReadWriteSeeker { return f }, p, q, size)
		}},
		{name: "file-crc", label: "*os.File+CRC-64/NVME", role: roleGuarded, op: func() error {
			return fileRoundTrip(dir, func(f *os.File) io.ReadWriteSeeker { return &crcFile{f: f} }, p, q, size)
		}},
	}
	check := func() error {
		if st := m.Stats(); st.SpilledBytes != 0 || st.DiskWritten == 0 {
			return fmt.Errorf("spilled case: %d bytes moved by rollovers, %d written to disk; want 0 and all", st.SpilledBytes, st.DiskWritten)
		}
		return nil
	}
	return cases, check, func() { m.Close() }, nil
}

// newCloseCases returns the cases of NewBuffer+Close.
func newCloseCases(dir string) ([]microCase, func(), error) {
	m, err := spool.NewManager(spool.Options{TempDir: dir})
	if err != nil {
		return nil, nil, err
	}
	cases := []microCase{
		{name: "spool", label: "spool NewBuffer+Close", role: roleSpool, op: func() error {
			b, err := m.NewBuffer()
			if err != nil {
				return err
			}
			return b.Close()
		}},
		{name: "tempfile", label: "os.CreateTemp+Close+Remove", role: rolePeer, op: func() error {
			f, err := os.CreateTemp(dir, "spoolbench-new-*")
			if err != nil {
				return err
			}
			err = f.Close()
			if rerr := os.Remove(f.Name()); err == nil {
				err = rerr
			}
			return err
		}},
	}
	return cases, func() { m.Close() }, nil
}

func microProgress(r Result) string {
	m := r.Micro
	if m == nil || len(m.Cases) == 0 {
		return ""
	}
	c := m.Cases[0]
	if m.Bytes > 0 {
		return fmt.Sprintf("spool %.2f GB/s", c.GBps(m.Bytes))
	}
	return fmt.Sprintf("spool %.0f ns, %.1f allocs", c.Median, c.AllocsPerOp)
}

// printMicroReport prints the micro scenario: a row per operation with
// spool next to its peer and its physical baseline, and the targets.
func printMicroReport(w io.Writer, run Run) {
	cfg := run.Config
	fmt.Fprintf(w, "scenario micro: each operation timed next to its baselines in the same child process, the cases interleaved;\n")
	fmt.Fprintf(w, "medians of %d repetitions of about %v each; %s %s/%s, %d CPUs, GOMAXPROCS %d\n\n",
		cfg.MicroReps, cfg.MicroTime, run.GoVersion, run.GOOS, run.GOARCH, run.NumCPU, run.MaxProcs)

	byOp := func(op string) *MicroResult {
		for _, r := range run.Results {
			if r.Micro != nil && r.Micro.Op == op {
				return r.Micro
			}
		}
		return nil
	}
	xs := func(f float64) string {
		if math.IsNaN(f) {
			return "–"
		}
		return fmt.Sprintf("%.2fx", f)
	}
	cell := func(m *MicroResult, c *MicroCase) string {
		if c == nil {
			return "–"
		}
		if m.Bytes > 0 {
			return fmt.Sprintf("%s %.2f GB/s", c.Label, c.GBps(m.Bytes))
		}
		return fmt.Sprintf("%s %s", c.Label, formatNs(c.Median))
	}
	t := table{header: []string{"operation", "spool", "allocs/op", "peer", "spool ÷ peer", "physical limit", "spool ÷ physical", "with spool's guarantees", "spool ÷ that"}}
	var spreads []string
	for _, v := range microVariants {
		m := byOp(v.Name)
		if m == nil {
			continue
		}
		var peer, phys, guarded *MicroCase
		for i := range m.Cases {
			c := &m.Cases[i]
			switch c.Role {
			case rolePeer:
				peer = c
			case rolePhysical:
				phys = c
			case roleGuarded:
				guarded = c
			}
			if len(c.NsPerOp) > 1 && c.Median > 0 {
				spreads = append(spreads, fmt.Sprintf("%s %s %.0f%%", v.Name, c.Name, 100*(slices.Max(c.NsPerOp)-slices.Min(c.NsPerOp))/c.Median))
			}
		}
		for i := range m.Cases {
			c := &m.Cases[i]
			if c.Role != roleSpool {
				continue
			}
			op := v.Label
			if m.Bytes > 0 {
				op = fmt.Sprintf("%s, %s in %s pieces (%s)", v.Label, formatSize(m.Bytes), formatSize(int64(m.Piece)), strings.TrimPrefix(c.Label, "spool, "))
			}
			spoolCell := formatNs(c.Median)
			if m.Bytes > 0 {
				spoolCell = fmt.Sprintf("%.2f GB/s", c.GBps(m.Bytes))
			}
			t.rows = append(t.rows, []string{op, spoolCell, fmt.Sprintf("%.1f", c.AllocsPerOp),
				cell(m, peer), xs(speed(c, peer)), cell(m, phys), xs(speed(c, phys)), cell(m, guarded), xs(speed(c, guarded))})
		}
	}
	t.print(w)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets:")
	if m := byOp("memory"); m != nil {
		r, n := speed(m.Case("spool"), m.Case("bytes")), speed(m.Case("spool-new"), m.Case("bytes"))
		printTarget(w, r >= 1.0, !math.IsNaN(r), fmt.Sprintf("in-memory write+read >= 1.0x a reused bytes.Buffer: %s with the Buffer reused like the bytes.Buffer (%s with a new Buffer per op)", targetRatio(r, 1.0), xs(n)))
		if g := m.Case("bytes-mutex"); g != nil {
			fmt.Fprintf(w, "  (a bytes.Buffer behind a sync.Mutex, which any buffer safe for concurrent use must at least pay for, runs at %s the bare one; spool at %s it)\n",
				xs(speed(g, m.Case("bytes"))), xs(speed(m.Case("spool"), g)))
		}
	} else {
		printTarget(w, false, false, "in-memory write+read >= 1.0x a reused bytes.Buffer: not run")
	}
	if m := byOp("spilled"); m != nil {
		r := speed(m.Case("spool"), m.Case("file"))
		printTarget(w, r >= 0.95, !math.IsNaN(r), fmt.Sprintf("spilled round trip >= 0.95x a raw *os.File: %s", targetRatio(r, 0.95)))
		if g := m.Case("file-crc"); g != nil {
			fmt.Fprintf(w, "  (the same file computing and checking a CRC-64/NVME per piece, as spool must per 64 KiB block, runs at %s the raw one; spool at %s it)\n",
				xs(speed(g, m.Case("file"))), xs(speed(m.Case("spool"), g)))
		}
	} else {
		printTarget(w, false, false, "spilled round trip >= 0.95x a raw *os.File: not run")
	}
	if c := byOp("new").Case("spool"); c != nil {
		printTarget(w, c.Median <= 1000 && c.AllocsPerOp <= 2, true, fmt.Sprintf("NewBuffer+Close <= 1 µs and <= 2 allocations: %s, %.1f allocations", formatNs(c.Median), c.AllocsPerOp))
	} else {
		printTarget(w, false, false, "NewBuffer+Close <= 1 µs and <= 2 allocations: not run")
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each operation ran in a fresh child process. spool ÷ peer, spool ÷ physical: how many times faster spool is, the baseline's")
	fmt.Fprintln(w, "median time over spool's (below 1, spool is slower). The cases alternate, repetition by repetition. in-memory: write the")
	fmt.Fprintln(w, "payload in pieces, Seek(0), read it back in pieces; the spool Buffer reused (Truncate(0), Seek(0)) or new per op (NewBuffer")
	fmt.Fprintln(w, "... Close); bytes.Buffer reused (Reset); copy(): the same pieces copied into a reused slice and out again. spilled: a new")
	fmt.Fprintln(w, "spool Buffer put on disk by Rollover before the first write, against an os.CreateTemp file unlinked at once; both written")
	fmt.Fprintln(w, "and read in the same pieces, then closed. NewBuffer+Close: an empty buffer. allocs/op: runtime.MemStats.Mallocs per op.")
	fmt.Fprintln(w, "with spool's guarantees: the peer or physical limit made to pay for what spool guarantees and it does not: a sync.Mutex")
	fmt.Fprintln(w, "around each call (in memory); a CRC-64/NVME of each piece, kept in memory and checked when the piece is read back (on disk).")
	fmt.Fprintln(w, "GB/s: payload bytes per second (decimal).")
	if len(spreads) > 0 {
		fmt.Fprintf(w, "Spread of the repetitions, (max − min) / median: %s.\n", strings.Join(spreads, ", "))
	}
	fmt.Fprintf(w, "Total time %.1f s.\n", run.Seconds)
}

// speed is how many times faster spool's case is than base: base's
// median time over spool's (so it agrees with the GB/s columns), or NaN if
// either is missing.
func speed(spool, base *MicroCase) float64 {
	if spool == nil || base == nil || spool.Median <= 0 {
		return math.NaN()
	}
	return base.Median / spool.Median
}

// formatNs formats a duration in nanoseconds with a fitting unit.
func formatNs(ns float64) string {
	switch {
	case ns < 1e3:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%.2f µs", ns/1e3)
	case ns < 1e9:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	}
	return fmt.Sprintf("%.2f s", ns/1e9)
}
