package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// printReport prints run as a few lines of context and a table that lines
// up in a terminal and is also a Markdown table.
func printReport(w io.Writer, run Run) {
	cfg := run.Config
	wl := newWorkload(cfg.Seed, cfg.Total, cfg.MinSize, cfg.MaxSize)
	fmt.Fprintf(w, "scenario %s: %d uploads, %s (%s bytes), log-uniform sizes %s–%s, seed %d\n",
		run.Scenario, len(wl.Uploads), formatSize(wl.Total), commas(wl.Total), formatSize(cfg.MinSize), formatSize(cfg.MaxSize), cfg.Seed)
	fmt.Fprintf(w, "%d clients writing %s pieces (runtime.Gosched after each); spool budget %s; %s %s/%s, %d CPUs, GOMAXPROCS %d\n",
		cfg.Clients, formatSize(int64(cfg.Piece)), formatSize(cfg.Budget), run.GoVersion, run.GOOS, run.GOARCH, run.NumCPU, run.MaxProcs)
	fmt.Fprintln(w)

	var base *Result
	for i := range run.Results {
		if run.Results[i].Impl == baselineImpl {
			base = &run.Results[i]
		}
	}
	baseLabel := baselineImpl
	if im, ok := lookupImpl(baselineImpl); ok {
		baseLabel = im.Label
	}

	t := table{
		header: []string{"implementation", "wall", "GB/s", "vs " + baseLabel, "CPU", "peak RSS", "÷ budget", "spills", "spilled", "disk written", "files", "checksum errors"},
	}
	for _, r := range run.Results {
		ratio := "–"
		if base != nil && base.GBps() > 0 {
			ratio = fmt.Sprintf("%.2fx", r.GBps()/base.GBps())
		}
		rss, perBudget := "n/a", "n/a"
		if r.PeakHWM > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(r.PeakRSSAboveBaseline)/(1<<20))
			perBudget = fmt.Sprintf("%.2fx", float64(r.PeakRSSAboveBaseline)/float64(cfg.Budget))
		}
		spills, spilled := "–", "–"
		if r.Store.Budget > 0 {
			spills = commas(r.Store.Spills)
			spilled = formatSize(r.Store.SpilledBytes)
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
			spills,
			spilled,
			formatSize(r.Store.DiskBytes),
			commas(r.Store.Files),
			commas(r.ChecksumErrors + r.Errors),
		})
	}
	t.print(w)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each implementation ran alone in a fresh child process. wall: the whole workload (generate, write, read back, checksum, close);")
	fmt.Fprintln(w, "GB/s: upload bytes / wall (decimal GB). CPU: user+sys of the child. peak RSS: VmHWM after the workload minus VmRSS before it;")
	fmt.Fprintf(w, "÷ budget: peak RSS over the %s spool budget. spilled: spool Stats().SpilledBytes (copied by rollovers). disk written: bytes written\n", formatSize(cfg.Budget))
	fmt.Fprintln(w, "to files (spool: Stats().DiskWritten, rollovers plus writes straight to spill files). checksum errors: wrong read-backs plus failed operations.")
	for _, r := range run.Results {
		if r.SyscallWriteBytes >= 0 && !syscallWritesMatch(r.SyscallWriteBytes, r.Store.DiskBytes) {
			fmt.Fprintf(w, "NOTE: %s passed %s bytes to write(2) (/proc/self/io wchar) but accounts for %s bytes written to disk.\n",
				r.Label, commas(r.SyscallWriteBytes), commas(r.Store.DiskBytes))
		}
	}
	fmt.Fprintf(w, "Total time %.1f s.\n", run.Seconds)
}

// syscallWritesMatch reports whether wchar, the bytes a process passed to
// write(2) by /proc/self/io, agrees with disk, the bytes its store
// accounts for. They differ by a few bytes now and then, because the Go
// runtime writes 8 bytes to an eventfd to wake its network poller.
func syscallWritesMatch(wchar, disk int64) bool {
	d := wchar - disk
	return d >= 0 && d <= 4096
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
