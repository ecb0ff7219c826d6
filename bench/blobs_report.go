package main

import (
	"fmt"
	"io"
	"math"
)

// blobsEfficiencyTarget is the least data held in memory per byte of
// budget in use that spool should reach with many small blobs.
const blobsEfficiencyTarget = 0.8

// printBlobsReport prints the blobs scenario: what each store holds in
// memory after the writes and after the reads, its reads and RSS, and the
// target.
func printBlobsReport(w io.Writer, run Run) {
	cfg := run.Config
	wl := newBlobsWorkload(cfg)
	fmt.Fprintf(w, "scenario blobs: %s blobs, %s (%s bytes) in all, log-uniform sizes %s–%s, each written in one Write; then %s whole-blob reads,\n",
		commas(int64(len(wl.Sizes))), formatSize(wl.Total), commas(wl.Total), formatSize(cfg.BlobsMinSize), formatSize(cfg.BlobsMaxSize), commas(int64(cfg.BlobsReads)))
	fmt.Fprintf(w, "each blob drawn from a Zipf distribution (s = %g) over popularity ranks mapped to blobs by a fixed random permutation; seed %d.\n", cfg.BlobsZipf, cfg.Seed)
	fmt.Fprintf(w, "spool: one Manager with a %s budget (%.1f%% of the blob bytes) and the LeastFrequentlyUsed policy, a Buffer per blob.\n",
		formatSize(cfg.BlobsBudget), 100*float64(cfg.BlobsBudget)/float64(wl.Total))
	fmt.Fprintf(w, "map: map[int][]byte with a container/list in LRU order, capped at %s of blob bytes; a read that misses fetches the blob again\n", formatSize(cfg.BlobsBudget))
	fmt.Fprintf(w, "(generates it) and inserts it. %s %s/%s, %d CPUs, GOMAXPROCS %d\n", run.GoVersion, run.GOOS, run.GOARCH, run.NumCPU, run.MaxProcs)
	fmt.Fprintln(w)

	eff := func(p BlobsPoint) string {
		if e := p.Efficiency(); !math.IsNaN(e) {
			return fmt.Sprintf("%.3f", e)
		}
		return "–"
	}
	t := table{header: []string{"store, when", "blobs in memory", "data in memory", "MemoryInUse", "read windows", "efficiency (data ÷ MemoryInUse)"}}
	for _, r := range run.Results {
		b := r.Blobs
		if b == nil {
			continue
		}
		label := r.Label
		if r.problem() != "" {
			label += " (FAILED)"
		}
		for _, at := range []struct {
			when string
			p    BlobsPoint
		}{{"after the writes", b.AfterWrite}, {"after the reads", b.End}} {
			mem, windows := "–", "–"
			if r.Impl == spoolImpl {
				mem, windows = formatSize(at.p.MemoryInUse), commas(int64(at.p.ReadWindows))
			}
			t.rows = append(t.rows, []string{label + ", " + at.when, commas(int64(at.p.InMemory)), formatSize(at.p.Data), mem, windows, eff(at.p)})
		}
	}
	t.print(w)
	fmt.Fprintln(w)

	t = table{header: []string{"store", "hit ratio", "2nd half", "reads/s", "peak RSS", "÷ budget", "data in memory ÷ peak RSS", "spills", "promotions", "spill files at the end", "write errors"}}
	for _, r := range run.Results {
		b := r.Blobs
		if b == nil {
			continue
		}
		label := r.Label
		if r.problem() != "" {
			label += " (FAILED)"
		}
		perBudget, perRSS := "n/a", "n/a"
		if r.PeakHWM > 0 {
			perBudget = fmt.Sprintf("%.2fx", float64(r.PeakRSSAboveBaseline)/float64(cfg.BlobsBudget))
			perRSS = fmt.Sprintf("%.2f", float64(b.End.Data)/float64(r.PeakRSSAboveBaseline))
		}
		readsPerSec := "–"
		if b.ReadSeconds > 0 {
			readsPerSec = commas(int64(math.Round(float64(b.Reads.Reads) / b.ReadSeconds)))
		}
		spills, promotions, files := "–", "–", "–"
		if r.Impl == spoolImpl {
			spills = commas(b.StatsEnd.Spills)
			promotions = commas(b.StatsEnd.Promotions)
			files = commas(int64(b.StatsEnd.SpillFiles))
		}
		t.rows = append(t.rows, []string{label, pctCell(b.Reads.Ratio()), pctCell(b.SecondHalf.Ratio()), readsPerSec, rssCell(r), perBudget, perRSS,
			spills, promotions, files, commas(b.WriteErrors)})
	}
	t.print(w)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets:")
	sp, mp := findResult(run.Results, spoolImpl), findResult(run.Results, "map")
	text := fmt.Sprintf("spool's efficiency (data held in memory ÷ MemoryInUse) >= %.1f after the writes and after the reads", blobsEfficiencyTarget)
	switch {
	case sp == nil || sp.Blobs == nil:
		printTarget(w, false, false, text+": not run")
	default:
		a, e := sp.Blobs.AfterWrite.Efficiency(), sp.Blobs.End.Efficiency()
		known := !math.IsNaN(a) && !math.IsNaN(e)
		printTarget(w, known && a >= blobsEfficiencyTarget && e >= blobsEfficiencyTarget, known,
			fmt.Sprintf("%s: %s and %s (%s of blobs in %s of budget, then %s in %s)", text, eff(sp.Blobs.AfterWrite), eff(sp.Blobs.End),
				formatSize(sp.Blobs.AfterWrite.Data), formatSize(sp.Blobs.AfterWrite.MemoryInUse), formatSize(sp.Blobs.End.Data), formatSize(sp.Blobs.End.MemoryInUse)))
	}
	printBlobsFDTarget(w, sp)
	if sp != nil && mp != nil && sp.Blobs != nil && mp.Blobs != nil {
		fmt.Fprintf(w, "  (next to the map: hit ratio %s vs %s, peak RSS %s vs %s, data in memory at the end %s vs %s)\n",
			pctCell(sp.Blobs.Reads.Ratio()), pctCell(mp.Blobs.Reads.Ratio()), rssCell(*sp), rssCell(*mp), formatSize(sp.Blobs.End.Data), formatSize(mp.Blobs.End.Data))
	}
	for _, r := range run.Results {
		if b := r.Blobs; b != nil && b.WriteErrors > 0 {
			limit := "unknown"
			if b.FDSoft > 0 {
				limit = fmt.Sprintf("%s (hard limit %s)", commas(int64(b.FDSoft)), commas(int64(b.FDHard)))
			}
			fmt.Fprintf(w, "FAILED: %s: %s of %s blob writes failed, and their %s reads were not made; first: %s.\n",
				r.Label, commas(b.WriteErrors), commas(int64(b.Blobs)), commas(b.LostReads), b.FirstWriteError)
			if r.Impl == spoolImpl {
				fmt.Fprintf(w, "  The child's limit on open files is %s; spool had %s spill files open at the end, for %s buffers on disk (%s spill errors).\n",
					limit, commas(int64(b.StatsEnd.SpillFiles)), commas(int64(b.StatsEnd.BuffersOnDisk)), commas(b.StatsEnd.SpillErrors))
			}
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each store ran alone in a fresh child process. blobs/data in memory: spool's blobs whose Buffer is not OnDisk, and their sizes;")
	fmt.Fprintln(w, "the map's entries. MemoryInUse: Stats().MemoryInUse, the budget spool's buffers, read windows and stages take. hit ratio:")
	fmt.Fprintln(w, "reads served from memory (spool: Stats().ReadsFromMemory, per read; the map: entries found) over the reads made (a blob")
	fmt.Fprintln(w, "whose write failed is not read); 2nd half: the last 50% of the reads. Every read is checked against the blob's CRC-32C.")
	fmt.Fprintln(w, "peak RSS: VmHWM minus VmRSS before the workload.")
	fmt.Fprintln(w, "spill files at the end: Stats().SpillFiles, the segment files of spool's spill arena, shared by every buffer on disk.")
	fmt.Fprintln(w, "spool's child runs under a limit on open files (-blobs-fd-limit, soft and hard, set before its Manager is created); spill files")
	fmt.Fprintln(w, "and buffers on disk at most: the most of Stats().SpillFiles and BuffersOnDisk, sampled 50 times in each phase; descriptors: the")
	fmt.Fprintln(w, "most the child had open (/proc/self/fd) at those samples, its own included (standard streams, poller, /proc files, profiles).")
	fmt.Fprintf(w, "Total time %.1f s.\n", run.Seconds)
}

// blobsFDTarget returns the most spill files spool may keep open with
// gomaxprocs Ps: 4 × GOMAXPROCS + 4.
func blobsFDTarget(gomaxprocs int) int { return 4*gomaxprocs + 4 }

// printBlobsFDTarget prints the target of the spool child's spill files
// under its fd limit.
func printBlobsFDTarget(w io.Writer, sp *Result) {
	if sp == nil || sp.Blobs == nil {
		printTarget(w, false, false, "spilled buffers under an fd limit: spill files open <= 4 × GOMAXPROCS + 4: not run")
		return
	}
	b := sp.Blobs
	text := fmt.Sprintf("%s blobs (up to %s spilled at once) under an fd limit of %s: spill files open <= 4 × GOMAXPROCS + 4 = %d",
		commas(int64(b.Blobs)), commas(int64(b.MaxBuffersOnDisk)), commas(int64(b.FDLimit)), blobsFDTarget(b.GOMAXPROCS))
	fds := "unknown"
	if b.MaxFDs >= 0 {
		fds = commas(int64(b.MaxFDs))
	}
	switch {
	case b.FDLimit == 0:
		printTarget(w, false, false, fmt.Sprintf("spilled buffers under an fd limit: spill files open <= 4 × GOMAXPROCS + 4: no limit set (-blobs-fd-limit 0, or in process); soft limit %s, %d spill files at most",
			commas(int64(b.FDSoft)), b.MaxSpillFiles))
	case b.FDHard > b.FDLimit:
		printTarget(w, false, false, fmt.Sprintf("%s: the limit did not hold (soft %s, hard %s)", text, commas(int64(b.FDSoft)), commas(int64(b.FDHard))))
	default:
		ok := b.MaxSpillFiles <= blobsFDTarget(b.GOMAXPROCS) && b.WriteErrors == 0 && sp.problem() == ""
		detail := fmt.Sprintf("%d (Stats().SpillFiles at most; BuffersOnDisk %s at most), %s descriptors open at most, %s write errors",
			b.MaxSpillFiles, commas(int64(b.MaxBuffersOnDisk)), fds, commas(b.WriteErrors))
		printTarget(w, ok, true, fmt.Sprintf("%s: %s", text, detail))
	}
}

// pctCell formats a ratio as a percentage, or "–".
func pctCell(f float64) string {
	if math.IsNaN(f) {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*f)
}
