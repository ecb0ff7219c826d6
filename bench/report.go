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
	fmt.Fprintf(w, "that went on to a file after starting in memory (spool: rollovers, Stats().Spills). multipart-style: a bytes.Buffer up to %s,\n", formatSize(cfg.Threshold))
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
