package main

import (
	"fmt"
	"io"
	"strings"
)

// shrinkRSS is the peak RSS of a shrink run above its baseline before the
// shrink and after it (from SetMemoryBudget's return to the last upload),
// with the last sample of each phase (lastBefore, end), and whether each
// phase was sampled; likewise the Go heap's objects.
type shrinkRSS struct {
	before, after, lastBefore, end int64
	heapBefore, heapAfter          int64
	hasBefore, hasAfter, hasEnd    bool
}

// shrinkPhases reads r's RSS samples around the shrink s.
func shrinkPhases(r Result, s *ShrinkResult) shrinkRSS {
	var p shrinkRSS
	for _, x := range r.RSS {
		switch {
		case x.Seconds < s.Called:
			p.before, p.heapBefore, p.hasBefore = max(p.before, x.Bytes), max(p.heapBefore, x.HeapObjects), true
			p.lastBefore = x.Bytes
		case x.Seconds >= s.Returned && x.Seconds <= s.End:
			p.after, p.heapAfter, p.hasAfter = max(p.after, x.Bytes), max(p.heapAfter, x.HeapObjects), true
		}
		if x.Seconds <= s.End {
			p.end, p.hasEnd = x.Bytes, true
		}
	}
	return p
}

// printShrinkReport prints the shrink scenario: the phases around the
// shrink, what SetMemoryBudget returned, and the targets.
func printShrinkReport(w io.Writer, run Run) {
	cfg := run.Config
	wl := newWorkload(cfg.Seed, cfg.Total, cfg.MinSize, cfg.MaxSize)
	fmt.Fprintf(w, "scenario shrink: %d uploads, %s, log-uniform sizes %s–%s, seed %d; %d clients writing %s pieces (runtime.Gosched after each),\n",
		len(wl.Uploads), formatSize(wl.Total), formatSize(cfg.MinSize), formatSize(cfg.MaxSize), cfg.Seed, cfg.Clients, formatSize(int64(cfg.Piece)))
	fmt.Fprintf(w, "into one Manager with a %s budget that SetMemoryBudget(%s) shrinks once the clients have written %s of the bytes (-shrink-at %g)\n",
		formatSize(cfg.ShrinkBudget), formatSize(cfg.ShrinkTo), pctCell(cfg.ShrinkAt), cfg.ShrinkAt)
	fmt.Fprintf(w, "%s %s/%s, %d CPUs, GOMAXPROCS %d\n", run.GoVersion, run.GOOS, run.GOARCH, run.NumCPU, run.MaxProcs)
	fmt.Fprintln(w)

	r := findResult(run.Results, spoolImpl)
	if r == nil || r.Shrink == nil {
		fmt.Fprintln(w, "Targets:")
		printTarget(w, false, false, fmt.Sprintf("MemoryInUse <= %s from the moment SetMemoryBudget returns: not run", formatSize(cfg.ShrinkTo)))
		printTarget(w, false, false, "every upload read back intact: not run")
		fmt.Fprintf(w, "Total time %.1f s.\n", run.Seconds)
		return
	}
	s := r.Shrink
	rss := shrinkPhases(*r, s)
	cell := func(n int64, ok bool) string {
		if !ok {
			return "n/a"
		}
		return mibCell(n)
	}
	per := func(n int64, ok bool, budget int64) string {
		if !ok {
			return "n/a"
		}
		return fmt.Sprintf("%.2fx", float64(n)/float64(budget))
	}
	gbps := func(b int64, secs float64) string {
		if secs <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", float64(b)/secs/1e9)
	}
	t := table{header: []string{"phase", "from", "to", "bytes written", "uploads done", "GB/s", "peak RSS", "÷ budget", "RSS at its end", "peak Go heap objects", "peak MemoryInUse", "budget"}}
	label := "before the shrink"
	if r.problem() != "" {
		label += " (FAILED)"
	}
	t.rows = append(t.rows,
		[]string{label, "0.00 s", fmt.Sprintf("%.2f s", s.Called), formatSize(s.Written), commas(int64(s.After)), gbps(s.Written, s.Called),
			cell(rss.before, rss.hasBefore), per(rss.before, rss.hasBefore, s.Budget), cell(rss.lastBefore, rss.hasBefore), cell(rss.heapBefore, rss.hasBefore),
			mibCell(s.PeakBefore), formatSize(s.Budget)},
		[]string{"after SetMemoryBudget returned", fmt.Sprintf("%.2f s", s.Returned), fmt.Sprintf("%.2f s", s.End),
			formatSize(r.WantBytes - s.Written), commas(int64(r.Uploads - s.After)), gbps(r.WantBytes-s.Written, s.End-s.Returned),
			cell(rss.after, rss.hasAfter), per(rss.after, rss.hasAfter, s.To), cell(rss.end, rss.hasEnd), cell(rss.heapAfter, rss.hasAfter),
			mibCell(s.MaxInUse), formatSize(s.To)})
	t.print(w)
	fmt.Fprintln(w)

	ret := "nil"
	if s.Err != "" {
		ret = fmt.Sprintf("an error (%q)", s.Err)
		if s.OverBudget {
			ret = fmt.Sprintf("ErrOverBudget (%q)", s.Err)
		}
	}
	fmt.Fprintf(w, "SetMemoryBudget(%s) returned %s after %s, at %.2f s: MemoryInUse %s just before the call (peak so far %s), %s at its return.\n",
		formatSize(s.To), ret, latCell(float64(s.Duration().Nanoseconds())/1e6), s.Called, mibCell(s.InUseBefore), mibCell(s.PeakBefore), mibCell(s.InUseAfter))
	fmt.Fprintf(w, "Over the call, %s buffers gave up chunks (%s moved to disk) and %s were skipped as busy; %s of %s buffers on disk after it.\n",
		commas(s.Call.Evictions), formatSize(s.Call.SpilledBytes), commas(s.Call.SkippedBusy), commas(int64(s.Call.BuffersOnDisk)), commas(int64(s.Call.Buffers)))
	fmt.Fprintf(w, "From its return to the last upload (%.2f s), a goroutine read Stats().MemoryInUse %s times in a tight loop (runtime.Gosched between reads): at most %s, at %.2f s",
		s.End-s.Returned, commas(s.Samples), mibCell(s.MaxInUse), s.MaxAt)
	switch {
	case s.FitAt < 0:
		fmt.Fprintf(w, "; never within %s.\n", formatSize(s.To))
	case s.MaxInUse > s.To:
		fmt.Fprintf(w, "; within %s from %.2f s on (%s after the return), at most %s from then.\n", formatSize(s.To), s.FitAt,
			latCell((s.FitAt-s.Returned)*1e3), mibCell(s.MaxAfterFit))
	default:
		fmt.Fprintln(w, ".")
	}
	fmt.Fprintf(w, "Spool at the end: %s spills, %s spilled, %s written to disk.\n",
		commas(s.Final.Spills), formatSize(s.Final.SpilledBytes), formatSize(s.Final.DiskWritten))
	fmt.Fprintln(w)
	printLatency(w, run.Results, run.NumCPU)
	printTail(w, run.Results)
	if printMutex(w, run.Results) {
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "Targets:")
	text := fmt.Sprintf("MemoryInUse <= %s from the moment SetMemoryBudget returns", formatSize(s.To))
	if s.Samples == 0 {
		printTarget(w, false, false, text+": no samples")
	} else {
		printTarget(w, s.Held(), true, fmt.Sprintf("%s: at most %s in %s reads over %.2f s", text, mibCell(s.MaxInUse), commas(s.Samples), s.End-s.Returned))
		if s.Err != "" {
			// What SetMemoryBudget promises when it cannot bring
			// MemoryInUse down at once.
			detail := fmt.Sprintf("%s reads above it larger than the one before", commas(s.Rises))
			if s.FitAt >= 0 {
				detail += fmt.Sprintf("; within it from %.2f s on, at most %s from then", s.FitAt, mibCell(s.MaxAfterFit))
			} else {
				detail += "; never within it"
			}
			printTarget(w, s.HeldOnceFit(), true, fmt.Sprintf("after the error, MemoryInUse only falls until it is within %s, and stays within it: %s", formatSize(s.To), detail))
		}
	}
	var bad []string
	if r.ChecksumErrors > 0 {
		bad = append(bad, fmt.Sprintf("%s read back wrong", commas(r.ChecksumErrors)))
	}
	if r.Errors > 0 {
		bad = append(bad, fmt.Sprintf("%s failed operations", commas(r.Errors)))
	}
	detail := fmt.Sprintf("%d of %d uploads (%s) read back with the checksum they were written with", r.Uploads, r.WantUploads, formatSize(r.Bytes))
	if len(bad) > 0 {
		detail += "; " + strings.Join(bad, ", ")
	}
	printTarget(w, r.problem() == "", true, "every upload read back intact: "+detail)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "peak RSS: the largest of the child's VmRSS samples (every 20 ms) above its baseline in each phase; ÷ budget: that over the budget of the phase;")
	fmt.Fprintln(w, "RSS at its end: the last sample of the phase. SetMemoryBudget returns the memory spool lets go to the system before it returns")
	fmt.Fprintln(w, "(debug.FreeOSMemory, for a shrink of 1 MiB or more), which is most of the time the call takes.")
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", r.FirstError)
	}
	fmt.Fprintf(w, "Total time %.1f s.\n", run.Seconds)
}
