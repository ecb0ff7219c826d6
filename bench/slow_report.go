package main

import (
	"fmt"
	"io"
	"math"
)

// slowRSSTarget is the most peak RSS above the discarding harness that a
// spool variant of the slow scenario should take, per byte of budget.
const slowRSSTarget = 1.25

// slowHarness returns the discarding harness each variant of the slow
// scenario is measured against ("" for the harnesses themselves).
func slowHarness(impl string) string {
	switch impl {
	case "copy":
		return "copy-discard"
	case "http", "http-multipart":
		return "http-discard"
	}
	return ""
}

// slowAbove returns the peak RSS of r above that of its harness in rs, in
// bytes, and whether both were measured.
func slowAbove(rs []Result, r *Result) (int64, bool) {
	h := findResult(rs, slowHarness(r.Impl))
	if h == nil || r.PeakHWM <= 0 || h.PeakHWM <= 0 {
		return 0, false
	}
	return r.PeakRSSAboveBaseline - h.PeakRSSAboveBaseline, true
}

// printSlowReport prints the slow scenario and its targets.
func printSlowReport(w io.Writer, run Run) {
	cfg := run.Config
	wl := newSlowWorkload(cfg, cfg.SlowUploads)
	fmt.Fprintf(w, "scenario slow: %s uploads, log-uniform sizes %s–%s (%s in all), all in flight at once, each arriving %s per Read after a %v pause;\n",
		commas(int64(cfg.SlowUploads)), formatSize(cfg.SlowMinSize), formatSize(cfg.SlowMaxSize), formatSize(wl.Total), formatSize(int64(cfg.SlowRead)), cfg.SlowPause)
	fmt.Fprintf(w, "spool budget %s; seed %d. The HTTP variants' clients run in a process of their own; the server's RSS is measured.\n", formatSize(cfg.SlowBudget), cfg.Seed)
	fmt.Fprintf(w, "%s %s/%s, %d CPUs, GOMAXPROCS %d\n", run.GoVersion, run.GOOS, run.GOARCH, run.NumCPU, run.MaxProcs)
	for _, r := range run.Results {
		if r.Slow != nil && r.Slow.Fewer != "" {
			fmt.Fprintf(w, "NOTE: %s ran %s uploads, not %s: %s.\n", r.Label, commas(int64(r.Slow.Uploads)), commas(int64(cfg.SlowUploads)), r.Slow.Fewer)
		}
	}
	fmt.Fprintln(w)

	t := table{header: []string{"variant", "uploads", "most in flight", "wall", "peak RSS", "above its harness", "÷ budget", "peak Go heap objects", "peak Go stacks", "spool peak MemoryInUse", "spills", "errors"}}
	for _, r := range run.Results {
		s := r.Slow
		if s == nil {
			continue
		}
		label := r.Label
		if r.problem() != "" {
			label += " (FAILED)"
		}
		above, ratio := "–", "–"
		if d, ok := slowAbove(run.Results, &r); ok {
			above = fmt.Sprintf("%.1f MiB", float64(d)/(1<<20))
			ratio = fmt.Sprintf("%.2fx", float64(d)/float64(cfg.SlowBudget))
		}
		peak, spills := "–", "–"
		if s.Budget > 0 {
			peak, spills = formatSize(s.Stats.PeakMemoryInUse), commas(s.Stats.Spills)
		}
		heap, stacks := "n/a", "n/a"
		if len(r.RSS) > 0 {
			heap = mibCell(peakOf(r.RSS, func(s RSSSample) int64 { return s.HeapObjects }))
			stacks = mibCell(peakOf(r.RSS, func(s RSSSample) int64 { return s.Stacks }))
		}
		t.rows = append(t.rows, []string{label, commas(int64(r.Uploads)), commas(s.MaxInFlight), fmt.Sprintf("%.1f s", r.WallSeconds), rssCell(r), above, ratio,
			heap, stacks, peak, spills, commas(r.Errors + r.ChecksumErrors)})
	}
	t.print(w)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets:")
	for _, v := range []struct{ impl, what string }{{"copy", "io.Copy into spool"}, {"http", "spoolhttp.ParseMultipartForm"}} {
		text := fmt.Sprintf("%s: peak RSS above the discarding harness <= %.2fx budget", v.what, slowRSSTarget)
		r := findResult(run.Results, v.impl)
		if r == nil {
			printTarget(w, false, false, text+": not run")
			continue
		}
		d, ok := slowAbove(run.Results, r)
		if !ok {
			printTarget(w, false, false, text+": not measured (its harness did not run, or no /proc/self/status)")
			continue
		}
		x := float64(d) / float64(cfg.SlowBudget)
		h := findResult(run.Results, slowHarness(v.impl))
		printTarget(w, x <= slowRSSTarget, true, fmt.Sprintf("%s: %s (%.1f MiB above; %s vs %s for the harness, %s uploads in flight, budget %s)",
			text, targetRatio(x, slowRSSTarget), float64(d)/(1<<20), rssCell(*r), rssCell(*h), commas(r.Slow.MaxInFlight), formatSize(cfg.SlowBudget)))
	}
	for _, impl := range []string{"copy", "http"} {
		if r := findResult(run.Results, impl); r != nil && r.Slow != nil && r.Slow.Budget > 0 && r.Uploads > 0 {
			st := r.Slow.Stats
			fmt.Fprintf(w, "  (%s: %s spills; writers waited %.0f s in all for rollovers that made room for them, %.2f s per upload (Stats().EvictionWait);\n",
				r.Label, commas(st.Spills), st.EvictionWait.Seconds(), st.EvictionWait.Seconds()/float64(r.Uploads))
			fmt.Fprintf(w, "  %s buffers skipped as busy (SkippedBusy); wall %.1f s, its harness's %s)\n", commas(st.SkippedBusy), r.WallSeconds, wallOf(run.Results, slowHarness(impl)))
		}
	}
	if r := findResult(run.Results, "http-multipart"); r != nil {
		if d, ok := slowAbove(run.Results, r); ok && r.Slow != nil && r.Slow.Uploads > 0 {
			fmt.Fprintf(w, "  (mime/multipart alone, parts discarded: %.1f MiB above the same harness, %.0f bytes per upload in flight: what parsing the forms\n",
				float64(d)/(1<<20), float64(d)/float64(r.Slow.MaxInFlight))
			fmt.Fprintln(w, "  costs before any of spoolhttp's own; spoolhttp.ReadForm reads through a multipart.Reader too)")
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each variant ran alone in a fresh child process. peak RSS: VmHWM minus VmRSS before the workload (the server's, for HTTP).")
	fmt.Fprintln(w, "above its harness: peak RSS minus that of the same harness with a discarding sink (io.Copy variants: copy-discard; HTTP: http-discard);")
	fmt.Fprintf(w, "÷ budget: that over the %s budget. The discarding sinks read through a %d-byte buffer of their own, not io.Copy(io.Discard, body),\n", formatSize(cfg.SlowBudget), slowSinkRead)
	fmt.Fprintln(w, "whose ReadFrom holds an 8 KiB pooled slice for each body in flight, which would hide as much of spool's cost. most in flight:")
	fmt.Fprintln(w, "uploads set up and not finished at once (for HTTP: inside the handler). Every upload is checked: spool variants read the file")
	fmt.Fprintln(w, "back from its Buffer and compare size and CRC-32C with what the client sent; the discarding io.Copy sink checksums what it reads;")
	fmt.Fprintln(w, "the discarding handler checks the body's length. peak Go heap objects and stacks: the highest of runtime/metrics'")
	fmt.Fprintln(w, "/memory/classes/heap/objects:bytes (live and not yet collected) and /memory/classes/heap/stacks:bytes in the RSS samples, whole")
	fmt.Fprintln(w, "process (not above a baseline).")
	fmt.Fprintln(w, "spool peak MemoryInUse: Stats().PeakMemoryInUse, within the budget by construction.")
	fmt.Fprintf(w, "Total time %.1f s.\n", run.Seconds)
}

// wallOf returns the wall time of impl's result, or "–".
func wallOf(rs []Result, impl string) string {
	if r := findResult(rs, impl); r != nil {
		return fmt.Sprintf("%.1f s", r.WallSeconds)
	}
	return "–"
}

// mibCell formats n bytes in MiB with one decimal.
func mibCell(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// slowAboveMiB is the peak RSS of r above its harness in MiB, or NaN.
func slowAboveMiB(rs []Result, r *Result) float64 {
	if d, ok := slowAbove(rs, r); ok {
		return float64(d) / (1 << 20)
	}
	return math.NaN()
}
