package main

import (
	"fmt"
	"io"
	"math"
)

// printChurnReport prints the churn scenario: the spill arena's files and
// Stats at each step, and the target.
func printChurnReport(w io.Writer, run Run) {
	cfg := run.Config
	fmt.Fprintf(w, "scenario churn: one Manager (budget %s) spills %s buffers of %s each (one Write, then Rollover); closes %s of them at random\n",
		formatSize(cfg.Budget), commas(int64(cfg.ChurnBuffers)), formatSize(cfg.ChurnSize), commas(int64(cfg.ChurnClose)))
	fmt.Fprintf(w, "(seed %d); spills %s new ones; reads back and checks every buffer still open, and closes it; closes the Manager.\n",
		cfg.Seed, commas(int64(cfg.ChurnNew)))
	fmt.Fprintf(w, "%s %s/%s, %d CPUs, GOMAXPROCS %d\n", run.GoVersion, run.GOOS, run.GOARCH, run.NumCPU, run.MaxProcs)
	fmt.Fprintln(w)

	sp := findResult(run.Results, spoolImpl)
	var c *ChurnResult
	if sp != nil {
		c = sp.Churn
	}
	if c == nil {
		fmt.Fprintln(w, "Targets:")
		printTarget(w, false, false, fmt.Sprintf("after the churn, blocks allocated to spill files <= %.2fx Stats().DiskLive: not run", churnTarget))
		fmt.Fprintf(w, "Total time %.1f s.\n", run.Seconds)
		return
	}
	cell := func(n int64) string {
		if n < 0 {
			return "n/a"
		}
		return formatSize(n)
	}
	t := table{header: []string{"spool, " + formatSize(cfg.ChurnSize) + " buffers", "buffers on disk", "spill files", "files found", "file sizes",
		"allocated (st_blocks)", "DiskInUse", "DiskLive", "allocated ÷ DiskLive"}}
	for _, p := range c.Points {
		files, r := "n/a", "–"
		if p.Files >= 0 {
			files = commas(int64(p.Files))
		}
		if x := p.Ratio(); p.Allocated >= 0 && !math.IsNaN(x) {
			r = fmt.Sprintf("%.3fx", x)
		}
		t.rows = append(t.rows, []string{p.When, commas(int64(p.BuffersOnDisk)), commas(int64(p.SpillFiles)), files, cell(p.FileSize),
			cell(p.Allocated), formatSize(p.DiskInUse), formatSize(p.DiskLive), r})
	}
	t.print(w)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets:")
	text := fmt.Sprintf("after the churn (%s spilled, %s closed, %s spilled), blocks allocated to spill files <= %.2fx Stats().DiskLive",
		commas(int64(c.Buffers)), commas(int64(c.Closed)), commas(int64(c.New)), churnTarget)
	p := c.point(churnAfterChurn)
	switch {
	case p == nil:
		printTarget(w, false, false, text+": not measured")
	case p.Allocated < 0:
		printTarget(w, false, false, text+": "+c.MeasureError)
	case p.DiskLive == 0:
		printTarget(w, false, false, text+": nothing live on disk")
	default:
		r := p.Ratio()
		printTarget(w, r <= churnTarget, true, fmt.Sprintf("%s: %s (%s allocated in %s spill files for %s live; DiskInUse %s)",
			text, targetRatio(r, churnTarget), formatSize(p.Allocated), commas(int64(p.Files)), formatSize(p.DiskLive), formatSize(p.DiskInUse)))
	}
	if q := c.point(churnAfterClose); q != nil && q.Allocated >= 0 {
		fmt.Fprintf(w, "  (after the closes: %s allocated for %s live, %s; after closing every buffer: %s allocated",
			formatSize(q.Allocated), formatSize(q.DiskLive), ratioCell(q.Ratio()), cell(pointAllocated(c, churnAfterAll)))
		if e := c.point(churnAfterManager); e != nil {
			fmt.Fprintf(w, "; spill files found open after Manager.Close: %s", commas(int64(e.Files)))
		}
		fmt.Fprintln(w, ")")
	}
	if sp.problem() != "" {
		fmt.Fprintf(w, "FAILED: %s\n", sp.problem())
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "spill files: Stats().SpillFiles, the segment files of the Manager's spill arena. files found: the files the child held open in the")
	fmt.Fprintf(w, "Manager's TempDir (%s) with no name (/proc/self/fd links \"… (deleted)\"), fstat'ed: file sizes, the sum of st_size (holes\n", c.TempDir)
	fmt.Fprintln(w, "included); allocated, the sum of st_blocks × 512, the disk space the file system holds for them. DiskInUse: the disk space")
	fmt.Fprintln(w, "spool counts the files as holding (granules of 4 KiB the live extents overlap, and freed space not yet given back); DiskLive:")
	fmt.Fprintln(w, "bytes of data in them. Freed space is reused first, and punched out of the files (fallocate) or cut off their ends once it")
	fmt.Fprintln(w, "passes max(DiskLive/8, 1 MiB), so allocated should follow DiskLive, not the most the files ever held.")
	fmt.Fprintf(w, "The churn (spills, closes, spills) took %.2f s in the child; total time %.1f s.\n", sp.WallSeconds, run.Seconds)
}

// pointAllocated returns the blocks allocated at the point when of c, or
// -1.
func pointAllocated(c *ChurnResult, when string) int64 {
	if p := c.point(when); p != nil {
		return p.Allocated
	}
	return -1
}

// ratioCell formats a ratio as "1.23x", or "–".
func ratioCell(f float64) string {
	if math.IsNaN(f) {
		return "–"
	}
	return fmt.Sprintf("%.2fx", f)
}
