package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// printReport prints the uploads scenario as a few lines of context, a
// table that lines up in a terminal and is also a Markdown table, and the
// targets.
func printReport(w io.Writer, run Run) {
	cfg := run.Config
	wl := newWorkload(cfg.Seed, cfg.Total, cfg.MinSize, cfg.MaxSize)
	fmt.Fprintf(w, "scenario %s: %d uploads, %s (%s bytes), log-uniform sizes %s–%s, seed %d\n",
		run.Scenario, len(wl.Uploads), formatSize(wl.Total), commas(wl.Total), formatSize(cfg.MinSize), formatSize(cfg.MaxSize), cfg.Seed)
	fmt.Fprintf(w, "%d clients writing %s pieces (runtime.Gosched after each); spool budget %s; per-buffer spools keep %s per upload in memory;\n",
		cfg.Clients, formatSize(int64(cfg.Piece)), formatSize(cfg.Budget), formatSize(cfg.Threshold))
	fmt.Fprintf(w, "%s %s/%s, %d CPUs, GOMAXPROCS %d\n", run.GoVersion, run.GOOS, run.GOARCH, run.NumCPU, run.MaxProcs)
	fmt.Fprintln(w)

	best := bestPeer(run.Results, func(Impl) bool { return true })
	t := table{
		header: []string{"implementation", "wall", "GB/s", "÷ best peer", "CPU", "peak RSS", "÷ budget", "disk written", "spills", "files", "checksum errors"},
	}
	for _, r := range run.Results {
		ratio := "–"
		if best != nil && best.GBps() > 0 {
			ratio = fmt.Sprintf("%.2fx", r.GBps()/best.GBps())
		}
		rss, perBudget := "n/a", "n/a"
		if r.PeakHWM > 0 {
			rss = rssCell(r)
			perBudget = fmt.Sprintf("%.2fx", float64(r.PeakRSSAboveBaseline)/float64(cfg.Budget))
		}
		spills := "–"
		if im, ok := lookupImpl(r.Impl); ok && (im.PerBuffer || im.Name == spoolImpl) {
			spills = commas(r.Store.Spills)
		}
		label := r.Label
		if r.problem() != "" {
			label += " (FAILED)"
		}
		t.rows = append(t.rows, []string{
			label,
			fmt.Sprintf("%.2f s", r.WallSeconds),
			fmt.Sprintf("%.2f", r.GBps()),
			ratio,
			fmt.Sprintf("%.2f s", r.CPUSeconds()),
			rss,
			perBudget,
			formatSize(r.Store.DiskBytes),
			spills,
			commas(r.Store.Files),
			commas(r.ChecksumErrors + r.Errors),
		})
	}
	t.print(w)
	fmt.Fprintln(w)
	printLatency(w, run.Results, run.NumCPU)
	printTail(w, run.Results)
	if printMutex(w, run.Results) {
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "Targets:")
	sp := findResult(run.Results, spoolImpl)
	pb := bestPeer(run.Results, func(im Impl) bool { return im.PerBuffer })
	switch {
	case sp == nil || pb == nil:
		printTarget(w, false, false, "spool's throughput >= 1.0x the best per-buffer spool's: not run")
	default:
		r := sp.GBps() / pb.GBps()
		printTarget(w, r >= 1.0, true, fmt.Sprintf("spool's throughput >= 1.0x the best per-buffer spool's: %s (%.2f GB/s vs %s %.2f GB/s)", targetRatio(r, 1.0), sp.GBps(), pb.Label, pb.GBps()))
	}
	switch {
	case sp == nil:
		printTarget(w, false, false, "spool's peak RSS above baseline <= 1.25x budget: not run")
	case sp.PeakHWM <= 0:
		printTarget(w, false, false, "spool's peak RSS above baseline <= 1.25x budget: no /proc/self/status here")
	default:
		r := float64(sp.PeakRSSAboveBaseline) / float64(cfg.Budget)
		printTarget(w, r <= 1.25, true, fmt.Sprintf("spool's peak RSS above baseline <= 1.25x budget: %s (%s over a %s budget)", targetRatio(r, 1.25), rssCell(*sp), formatSize(cfg.Budget)))
	}
	printLatencyTarget(w, sp, findResult(run.Results, latencyPeer))
	var others []string
	for _, r := range run.Results {
		if r.Impl != spoolImpl && r.PeakHWM > 0 {
			others = append(others, fmt.Sprintf("%s %s", r.Label, rssCell(r)))
		}
	}
	if len(others) > 0 {
		fmt.Fprintf(w, "  (peak RSS of the others: %s; a per-buffer spool's bound is %d clients x %s = %s)\n",
			strings.Join(others, ", "), cfg.Clients, formatSize(cfg.Threshold), formatSize(int64(cfg.Clients)*cfg.Threshold))
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each implementation ran alone in a fresh child process. wall: the whole workload (generate, write, read back, checksum, close).")
	fmt.Fprint(w, "GB/s: upload bytes / wall (decimal GB). ÷ best peer: GB/s over that of the fastest implementation other than spool")
	if best != nil {
		fmt.Fprintf(w, " (%s)", best.Label)
	}
	fmt.Fprintln(w, ".")
	fmt.Fprintln(w, "CPU: user+sys of the child. peak RSS: VmHWM after the workload minus VmRSS before it; ÷ budget: that over the spool budget.")
	fmt.Fprintln(w, "disk written: bytes written to files (spool: Stats().DiskWritten, rollovers plus writes straight to spill files). spills: uploads")
	fmt.Fprintln(w, "that went on to a file after starting in memory (spool: Stats().Spills, one per rollover and one per buffer per eviction, which may")
	fmt.Fprintf(w, "move only some of a buffer's chunks, so a buffer may count more than once). multipart-style: a bytes.Buffer up to %s,\n", formatSize(cfg.Threshold))
	fmt.Fprintln(w, "then the upload moves to an os.CreateTemp file of its own, as mime/multipart's ReadForm does; djherbis/buffer: its memory-then-file")
	fmt.Fprintf(w, "buffer, NewMulti(New(%s), NewPartition(NewFilePool(...))), which keeps the first %s in memory and the rest in a file.\n", formatSize(cfg.Threshold), formatSize(cfg.Threshold))
	fmt.Fprintln(w, "checksum errors: wrong read-backs plus failed operations.")
	for _, r := range run.Results {
		if r.SyscallWriteBytes >= 0 && r.SyscallWrites >= 0 && !syscallWritesMatch(r.SyscallWriteBytes, r.SyscallWrites, r.Store.DiskBytes) {
			fmt.Fprintf(w, "NOTE: %s passed %s bytes to write(2) in %s calls (/proc/self/io wchar, syscw) but accounts for %s bytes written to disk.\n",
				r.Label, commas(r.SyscallWriteBytes), commas(r.SyscallWrites), commas(r.Store.DiskBytes))
		}
	}
	fmt.Fprintf(w, "Total time %.1f s.\n", run.Seconds)
}

// latencyPeer is the implementation spool's write latency is held to: a
// temporary file per upload, which has no memory to manage.
const latencyPeer = "tempfile"

// latencyTarget is the most spool's p99.9 write latency may be, in
// multiples of latencyPeer's in the same run.
const latencyTarget = 2.0

// printLatency prints the write latency of each result that has it: the
// percentiles of the time each Write of one piece took, as its client
// timed it, next to the time the child's goroutines spent blocked on locks
// and the share of the machine's CPU other processes took meanwhile
// (cpus: the machine's), which moves the tail of every implementation on a
// shared machine.
func printLatency(w io.Writer, rs []Result, cpus int) {
	peer := findResult(rs, latencyPeer)
	if peer != nil && (peer.WriteLatency.Count == 0 || peer.WriteLatency.P999 <= 0) {
		peer = nil
	}
	t := table{header: []string{"implementation", "writes", "p50", "p99", "p99.9", "max"}}
	if peer != nil {
		t.header = append(t.header, "p99.9 ÷ "+peer.Label)
	}
	t.header = append(t.header, "blocked on locks", "others' CPU")
	for _, r := range rs {
		l := r.WriteLatency
		if l.Count == 0 {
			continue
		}
		row := []string{r.Label, commas(int64(l.Count)), latCell(l.P50), latCell(l.P99), latCell(l.P999), latCell(l.Max)}
		if peer != nil {
			row = append(row, fmt.Sprintf("%.2fx", l.P999/peer.WriteLatency.P999))
		}
		wait := "n/a"
		if r.LockWaitSeconds >= 0 {
			wait = latCell(r.LockWaitSeconds * 1e3)
		}
		others := "n/a"
		if f := r.OtherShare(cpus); !math.IsNaN(f) {
			others = fmt.Sprintf("%.0f%%", 100*f)
		}
		t.rows = append(t.rows, append(row, wait, others))
	}
	if len(t.rows) == 0 {
		return
	}
	fmt.Fprintln(w, "Write latency: each Write of one piece, timed by its client (time.Now before and after), over all the writes of the run.")
	fmt.Fprintln(w, "blocked on locks: the time the child's goroutines spent blocked on sync and runtime-internal locks (runtime/metrics). others' CPU: the share")
	fmt.Fprintln(w, "of the machine's CPU time that went to other processes while the child ran (/proc/stat): above a few percent, every tail here is theirs too.")
	t.print(w)
	fmt.Fprintln(w)
}

// printLatencyTarget prints the target line of spool's p99.9 write latency
// against that of peer (either may be nil: not run).
func printLatencyTarget(w io.Writer, sp, peer *Result) {
	text := fmt.Sprintf("spool's p99.9 write latency <= %gx a temp file per upload's", latencyTarget)
	switch {
	case sp == nil || peer == nil:
		printTarget(w, false, false, text+": not run")
	case sp.WriteLatency.Count == 0 || peer.WriteLatency.Count == 0 || peer.WriteLatency.P999 <= 0:
		printTarget(w, false, false, text+": no latencies recorded")
	default:
		r := sp.WriteLatency.P999 / peer.WriteLatency.P999
		printTarget(w, r <= latencyTarget, true, fmt.Sprintf("%s: %s (%s vs %s %s)", text, targetRatio(r, latencyTarget),
			latCell(sp.WriteLatency.P999), peer.Label, latCell(peer.WriteLatency.P999)))
	}
}

// printTail prints, for the results that have a trace tail (-trace),
// where their slowest writes spent their time.
func printTail(w io.Writer, rs []Result) {
	var lines, errs []string
	for _, r := range rs {
		if r.TailError != "" {
			errs = append(errs, fmt.Sprintf("%s: %s", r.Label, r.TailError))
		}
		t := r.Tail
		if t == nil || t.Slow == 0 {
			continue
		}
		var parts []string
		for _, p := range t.Parts {
			parts = append(parts, fmt.Sprintf("%s %s (%s; most of %s slow writes)", pctCell(p.Seconds/t.Seconds), p.What, latCell(p.Seconds*1e3), commas(int64(p.Writes))))
		}
		lines = append(lines, fmt.Sprintf("  %s: %s writes of %s at or above %s, %s in all: %s", r.Label, commas(int64(t.Slow)), commas(int64(t.Writes)),
			latCell(t.Threshold), latCell(t.Seconds*1e3), strings.Join(parts, "; ")))
		if len(t.Holders) > 0 && t.LockWait > 0 {
			var held []string
			for _, p := range t.Holders {
				held = append(held, fmt.Sprintf("%s %s (%s; most of the waits of %s slow writes)", pctCell(p.Seconds/t.LockWait), p.What, latCell(p.Seconds*1e3), commas(int64(p.Writes))))
			}
			lines = append(lines, fmt.Sprintf("    while those writes waited on locks (%s), the goroutines that then released them: %s", latCell(t.LockWait*1e3), strings.Join(held, "; ")))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(w, "Where the slowest writes (at or above the p99.9 of the writes each execution trace saw) spent their time (-trace, tracetail.go):")
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
	for _, e := range errs {
		fmt.Fprintf(w, "NOTE: no trace for %s\n", e)
	}
	if len(lines) > 0 || len(errs) > 0 {
		fmt.Fprintln(w)
	}
}

// printMutex prints, for the results that have a mutex profile
// (-profile), the lock contention it shows, and reports whether it
// printed anything.
func printMutex(w io.Writer, rs []Result) bool {
	t := table{header: []string{"implementation", "contentions", "waited on sync locks", "on spool's store lock", "share", "on runtime-internal locks", "most waited for: released by"}}
	var errs []string
	for _, r := range rs {
		if r.MutexError != "" {
			errs = append(errs, fmt.Sprintf("%s: %s", r.Label, r.MutexError))
		}
		mp := r.Mutex
		if mp == nil {
			continue
		}
		store, share := "–", "–"
		if r.Impl == spoolImpl {
			store = latCell(float64(mp.StoreDelay) / 1e6)
			share = pctCell(mp.StoreShare())
		}
		top := "–"
		if len(mp.Sites) > 0 {
			s := mp.Sites[0]
			top = fmt.Sprintf("%s (%s), %s", shortFunc(s.Func), s.Lock, pctCell(ratio(s.Delay, mp.Delay)))
		}
		t.rows = append(t.rows, []string{r.Label, commas(mp.Contentions), latCell(float64(mp.Delay) / 1e6), store, share,
			latCell(float64(mp.RuntimeDelay) / 1e6), top})
	}
	if len(t.rows) == 0 && len(errs) == 0 {
		return false
	}
	if len(t.rows) > 0 {
		fmt.Fprintf(w, "Lock contention, from each child's mutex profile (every contention recorded): the time goroutines waited for a lock another held,\n")
		fmt.Fprintf(w, "charged to where it was released. spool's store lock: a Buffer's sync.RWMutex (store.mu), which an eviction holds while it moves the victim's chunks.\n")
		t.print(w)
		if sp := findResult(rs, spoolImpl); sp != nil && sp.Mutex != nil && len(sp.Mutex.Sites) > 0 {
			var sites []string
			for _, s := range sp.Mutex.Sites {
				sites = append(sites, fmt.Sprintf("%s (%s) %s in %s", shortFunc(s.Func), s.Lock, latCell(float64(s.Delay)/1e6), commas(s.Contentions)))
			}
			fmt.Fprintf(w, "  spool's locks were most waited for when released by: %s\n", strings.Join(sites, "; "))
		}
	}
	for _, e := range errs {
		fmt.Fprintf(w, "NOTE: no mutex profile for %s\n", e)
	}
	return true
}

// shortFunc shortens a function name of the spool module for a table:
// "github.com/spoolkit/spool.(*Manager).evict" becomes
// "spool.(*Manager).evict".
func shortFunc(f string) string {
	return strings.Replace(f, "github.com/spoolkit/", "", 1)
}

// latCell formats a duration given in milliseconds: "850 µs", "1.25 ms",
// "12.3 ms", "1.52 s".
func latCell(ms float64) string {
	switch {
	case math.IsNaN(ms):
		return "–"
	case ms < 1:
		return fmt.Sprintf("%.0f µs", ms*1e3)
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.2f s", ms/1e3)
}

// printTarget prints one target line: PASS, MISS, or n/a if it could not
// be measured.
func printTarget(w io.Writer, ok, known bool, text string) {
	verdict := "MISS"
	switch {
	case !known:
		verdict = "n/a "
	case ok:
		verdict = "PASS"
	}
	fmt.Fprintf(w, "- %s %s\n", verdict, text)
}

// targetRatio formats a ratio r checked against limit with two decimals,
// or three where two would round it onto the limit.
func targetRatio(r, limit float64) string {
	if math.IsNaN(r) {
		return "–"
	}
	if fmt.Sprintf("%.2f", r) == fmt.Sprintf("%.2f", limit) && r != limit {
		return fmt.Sprintf("%.3fx", r)
	}
	return fmt.Sprintf("%.2fx", r)
}

// findResult returns the first result of impl, or nil.
func findResult(rs []Result, impl string) *Result {
	for i := range rs {
		if rs[i].Impl == impl {
			return &rs[i]
		}
	}
	return nil
}

// bestPeer returns the fastest clean result of an implementation other
// than spool that keep accepts, or nil.
func bestPeer(rs []Result, keep func(Impl) bool) *Result {
	var best *Result
	for i := range rs {
		r := &rs[i]
		im, ok := lookupImpl(r.Impl)
		if !ok || im.Name == spoolImpl || !keep(im) || r.problem() != "" {
			continue
		}
		if best == nil || r.GBps() > best.GBps() {
			best = r
		}
	}
	return best
}

// syscallWritesMatch reports whether wchar, the bytes a child passed to
// write(2) and pwrite(2) over its workload by /proc/self/io, agrees with
// disk, the bytes its store accounts for, given syscw, the number of those
// calls. The only other writes of a child's workload are the Go runtime's:
// it wakes its network poller by writing 8 bytes to an eventfd, one call
// each time, as often as the scheduler needs, which depends on timing and
// load (514 times, 4,112 bytes, over one upload run of 4 MiB in a test on
// a busy machine). So wchar may exceed disk by 8 bytes a call, and by
// nothing else.
func syscallWritesMatch(wchar, syscw, disk int64) bool {
	d := wchar - disk
	return d >= 0 && d%8 == 0 && d/8 <= syscw
}

// table is a table of strings, printed with | separators, padded so that
// the columns line up; the first column is left-aligned, the others right.
type table struct {
	header []string
	rows   [][]string
}

func (t table) print(w io.Writer) {
	width := make([]int, len(t.header))
	for _, row := range append([][]string{t.header}, t.rows...) {
		for i, cell := range row {
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	line := func(row []string) {
		var b strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell))
			if i == 0 {
				b.WriteString("| " + cell + pad + " ")
			} else {
				b.WriteString("| " + pad + cell + " ")
			}
		}
		b.WriteString("|\n")
		io.WriteString(w, b.String())
	}
	line(t.header)
	sep := make([]string, len(t.header))
	for i := range sep {
		if i == 0 {
			sep[i] = ":" + strings.Repeat("-", width[i]-1)
		} else {
			sep[i] = strings.Repeat("-", width[i]-1) + ":"
		}
	}
	line(sep)
	for _, row := range t.rows {
		line(row)
	}
}

// formatSize formats n bytes with a binary unit: "64 MiB", "1.50 GiB".
func formatSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f, u := float64(n), 0
	for u < len(units)-1 && (f >= 1024 || f <= -1024) {
		f /= 1024
		u++
	}
	if u == 0 || f == float64(int64(f)) {
		return fmt.Sprintf("%d %s", int64(f), units[u])
	}
	return fmt.Sprintf("%.2f %s", f, units[u])
}

// commas formats n with thousands separators.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
