package main

import (
	"fmt"
	"io"
	"math"
)

// printCacheReport prints the cache scenario: a table per Zipf exponent
// with the greedy ceiling first, the scan test, and the targets.
func printCacheReport(w io.Writer, run Run) {
	cfg := run.Config
	cr := run.Cache
	if cr == nil { // the parent could not measure the charges
		wl := newCacheWorkload(cfg)
		cr = &CacheRun{Blobs: len(wl.Sizes), Bytes: wl.Total}
	}
	fmt.Fprintf(w, "scenario cache: %s blobs, %s (%s bytes) in total, log-uniform sizes %s–%s, each written in %s pieces, seed %d\n",
		commas(int64(cr.Blobs)), formatSize(cr.Bytes), commas(cr.Bytes), formatSize(cfg.BlobMinSize), formatSize(cfg.BlobMaxSize), formatSize(cachePiece), cfg.Seed)
	charged := "not measured"
	if cr.Charged > 0 {
		charged = fmt.Sprintf("%s as spool charges them in memory, measured: %.3f x their bytes", formatSize(cr.Charged), float64(cr.Charged)/float64(cr.Bytes-cr.UnfitBytes))
		if cr.Unfit > 0 {
			charged += fmt.Sprintf(", %d blobs larger than the budget left out", cr.Unfit)
		}
	}
	fmt.Fprintf(w, "one Manager, budget %s = %.1f%% of the blob bytes (%s); %s reads per run, each a ReadAt of a whole blob into a reused buffer,\n",
		formatSize(cfg.CacheBudget), 100*float64(cfg.CacheBudget)/float64(cr.Bytes), charged, commas(int64(cfg.Reads)))
	if cfg.SmallRead > 0 {
		fmt.Fprintf(w, "or, in the small-read runs (s = %g), of %s at an offset drawn uniformly from the blob's %s-aligned pages, as HTTP Range requests to a cache land;\n",
			cfg.Zipf[0], formatSize(cfg.SmallRead), formatSize(cfg.SmallRead))
	}
	fmt.Fprintf(w, "blob of each read drawn from a Zipf distribution over popularity ranks, ranks mapped to blobs by a fixed random permutation (popularity independent of size);\n")
	fmt.Fprintf(w, "every run of one exponent reads the same blobs in the same order. %s %s/%s, %d CPUs, GOMAXPROCS %d\n", run.GoVersion, run.GOOS, run.GOARCH, run.NumCPU, run.MaxProcs)

	byKey := func(impl string, s float64, scan, small bool) *Result {
		for i := range run.Results {
			r := &run.Results[i]
			if r.Impl == impl && r.Cache != nil && r.Cache.Zipf == s && r.Cache.Scan == scan && r.Cache.Small == small {
				return r
			}
		}
		return nil
	}
	pct := func(f float64) string {
		if math.IsNaN(f) {
			return "–"
		}
		return fmt.Sprintf("%.1f%%", 100*f)
	}

	type kind struct {
		s     float64
		small bool
	}
	var kinds []kind
	for _, s := range cfg.Zipf {
		kinds = append(kinds, kind{s, false})
	}
	if cfg.SmallRead > 0 {
		kinds = append(kinds, kind{cfg.Zipf[0], true})
	}
	ceilOf := func(s float64, small bool) *Ceiling {
		for i := range cr.Ceilings {
			if c := &cr.Ceilings[i]; c.Zipf == s && c.Small == small {
				return c
			}
		}
		return nil
	}
	for _, k := range kinds {
		s := k.s
		ceil := ceilOf(s, k.small)
		fmt.Fprintln(w)
		title := fmt.Sprintf("Zipf s = %g, whole-blob reads", s)
		if k.small {
			title = fmt.Sprintf("Zipf s = %g, small reads (%s at a random page)", s, formatSize(cfg.SmallRead))
		}
		if ceil != nil {
			fmt.Fprintf(w, "%s (the most popular blob gets %.1f%% of the reads)\n\n", title, 100*ceil.TopShare)
		} else {
			fmt.Fprintf(w, "%s\n\n", title)
		}
		t := table{header: []string{"policy", "reads from memory", "2nd half", "bytes from memory", "2nd half", "reads/s", "peak RSS", "promotions", "spills: writes", "spills: reads", "verify errors"}}
		if ceil != nil {
			t.rows = append(t.rows, []string{"greedy ceiling (offline, approx.)",
				pct(ceil.Overall.Ratio()), pct(ceil.SecondHalf.Ratio()), pct(ceil.Overall.ByteRatio()), pct(ceil.SecondHalf.ByteRatio()),
				"–", "–", "–", "–", "–", "–"})
			fixed := "best fixed set (offline)"
			if !ceil.StaticExact {
				fixed = "greedy fixed set (offline)"
			}
			t.rows = append(t.rows, []string{fixed,
				pct(ceil.Static.Ratio()), pct(ceil.StaticSecondHalf.Ratio()), pct(ceil.Static.ByteRatio()), pct(ceil.StaticSecondHalf.ByteRatio()),
				"–", "–", "–", "–", "–", "–"})
		}
		for _, r := range run.Results {
			c := r.Cache
			if c == nil || c.Zipf != s || c.Scan || c.Small != k.small {
				continue
			}
			label := r.Label
			if r.problem() != "" {
				label += " (FAILED)"
			}
			t.rows = append(t.rows, []string{label,
				pct(c.Overall.Ratio()), pct(c.SecondHalf.Ratio()), pct(c.Overall.ByteRatio()), pct(c.SecondHalf.ByteRatio()),
				commas(int64(math.Round(c.ReadsPerSecond))), rssCell(r),
				commas(c.End.Promotions - c.AfterWrite.Promotions),
				commas(c.AfterWrite.Spills), commas(c.End.Spills - c.AfterWrite.Spills),
				commas(r.ChecksumErrors + r.Errors),
			})
		}
		t.print(w)
	}

	scan := false
	for _, r := range run.Results {
		scan = scan || r.Cache != nil && r.Cache.Scan
	}
	s0 := cfg.Zipf[0]
	if scan {
		n := cfg.Reads
		_, during, _ := scanPhases()
		width := bucketStart(during[1], n) - bucketStart(during[0], n)
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Scan test: the Zipf s = %g reads; through the middle third, %d new blobs of %s (%s in all), one before every %.0f reads,\n",
			s0, cfg.ScanBlobs, formatSize(cfg.ScanSize), formatSize(int64(cfg.ScanBlobs)*cfg.ScanSize), float64(width)/float64(cfg.ScanBlobs))
		fmt.Fprintf(w, "each written in %s pieces, read back once and closed. Hit ratio of the Zipf reads: before = reads %s–%s (after warm-up),\n",
			formatSize(cachePiece), commas(int64(bucketStart(cacheBuckets/6, n))), commas(int64(bucketStart(cacheBuckets/3, n))))
		fmt.Fprintf(w, "during = %s–%s, after = %s–%s; \"no scan\" is the same policy's run without the scan, over the same windows.\n\n",
			commas(int64(bucketStart(during[0], n))), commas(int64(bucketStart(during[1], n))), commas(int64(bucketStart(during[1], n))), commas(int64(n)))
		t := table{header: []string{"policy", "before", "during", "after", "after − before", "no scan: before", "no scan: after", "scan read-backs from memory", "promotions", "spills: reads"}}
		for _, r := range run.Results {
			c := r.Cache
			if c == nil || !c.Scan {
				continue
			}
			label := r.Label
			if r.problem() != "" {
				label += " (FAILED)"
			}
			nsBefore, nsAfter := "–", "–"
			if ns := byKey(r.Impl, c.Zipf, false, false); ns != nil {
				b, _, a := scanWindows(ns.Cache)
				nsBefore, nsAfter = pct(b.Ratio()), pct(a.Ratio())
			}
			t.rows = append(t.rows, []string{label,
				pct(c.ScanBefore.Ratio()), pct(c.ScanDuring.Ratio()), pct(c.ScanAfter.Ratio()),
				points(c.ScanAfter.Ratio() - c.ScanBefore.Ratio()),
				nsBefore, nsAfter,
				fmt.Sprintf("%d of %d", c.ScanReadsFromMem, cfg.ScanBlobs),
				commas(c.End.Promotions - c.AfterWrite.Promotions),
				commas(c.End.Spills - c.AfterWrite.Spills),
			})
		}
		t.print(w)
	}

	// Targets.
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets:")
	target := func(ok, known bool, text string) { printTarget(w, ok, known, text) }
	ceilNote := func(s float64, small bool) string {
		c := ceilOf(s, small)
		if c == nil {
			return ""
		}
		if !c.StaticExact {
			return fmt.Sprintf("; greedy ceiling %s; a greedily filled fixed set expects %.3f%%, and no fixed set more than %.3f%%, the most any online policy can expect",
				pct(c.Overall.Ratio()), 100*c.StaticExpected, 100*c.StaticBound)
		}
		return fmt.Sprintf("; greedy ceiling %s; the best fixed set expects %.2f%%, the most any online policy can expect", pct(c.Overall.Ratio()), 100*c.StaticExpected)
	}
	for _, small := range []bool{false, true} {
		what := "whole-blob reads"
		if small {
			what = fmt.Sprintf("small reads of %s", formatSize(cfg.SmallRead))
			if cfg.SmallRead == 0 {
				what = "small reads"
			}
		}
		text := fmt.Sprintf("LeastFrequentlyUsed serves >= 95%% of reads from memory at s = 1.1, %s", what)
		if r := byKey("lfu", 1.1, false, small); r != nil {
			c := r.Cache
			target(c.Overall.Ratio() >= 0.95, true, fmt.Sprintf("%s: %s (2nd half %s%s)", text, pct(c.Overall.Ratio()), pct(c.SecondHalf.Ratio()), ceilNote(1.1, small)))
		} else {
			target(false, false, text+": not run")
		}
	}
	lfu, lru := byKey("lfu", 0.8, false, false), byKey("lru", 0.8, false, false)
	if lfu != nil && lru != nil {
		target(lfu.Cache.Overall.Ratio() >= lru.Cache.Overall.Ratio(), true, fmt.Sprintf("LeastFrequentlyUsed serves at least as many reads from memory as LeastRecentlyUsed at s = 0.8: %s vs %s (2nd half %s vs %s)",
			pct(lfu.Cache.Overall.Ratio()), pct(lru.Cache.Overall.Ratio()), pct(lfu.Cache.SecondHalf.Ratio()), pct(lru.Cache.SecondHalf.Ratio())))
	} else {
		target(false, false, "LeastFrequentlyUsed >= LeastRecentlyUsed at s = 0.8: not run")
	}
	if r := byKey("lfu", s0, true, false); r != nil {
		c := r.Cache
		d := c.ScanAfter.Ratio() - c.ScanBefore.Ratio()
		target(d > -0.05, !math.IsNaN(d), fmt.Sprintf("the scan costs LeastFrequentlyUsed's hot set < 5 points of hit ratio (after vs before, s = %g): %s (%s -> %s)",
			s0, points(d), pct(c.ScanBefore.Ratio()), pct(c.ScanAfter.Ratio())))
	} else {
		target(false, false, "the scan costs LeastFrequentlyUsed's hot set < 5 points of hit ratio: not run")
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each policy ran alone in a fresh child process. reads/bytes from memory: reads of the read phase served entirely from memory")
	fmt.Fprintln(w, "(Stats().ReadsFromMemory / Reads, and ReadBytesFromMemory / ReadBytes, deltas per read); 2nd half: the last 50% of the reads,")
	fmt.Fprintln(w, "after promotion has had time to converge. reads/s: reads / read-phase wall time. peak RSS: VmHWM minus VmRSS before the")
	fmt.Fprintln(w, "workload. promotions: spilled buffers brought back into memory. spills: rollovers during the writes and during the reads.")
	fmt.Fprintf(w, "verify errors: every %dth read is checked against the CRC-32C of the blob (or of the page a small read reads), and every scan\n", verifyEvery)
	fmt.Fprintln(w, "read-back; plus failed operations.")
	fmt.Fprintln(w, "The ceilings charge each blob what spool charges for it in memory: measured by writing it, as the runs do, into an otherwise")
	fmt.Fprintf(w, "empty scratch Manager with the same options and reading the rise of Stats().MemoryInUse; they fill the budget it enforces (%s).\n", formatSize(cr.Capacity))
	fmt.Fprintln(w, "greedy ceiling: computed offline over the same reads, no spool involved. It is an APPROXIMATION of the optimum, not the optimum:")
	fmt.Fprintln(w, "Belady's farthest-next-use rule weighted by size. The cache, filled by the writes in order, admits a missed blob by evicting")
	fmt.Fprintln(w, "the largest (next use − now) × charge first (never used again = infinity), and declines it if that would evict a blob whose")
	fmt.Fprintln(w, "weighted next use is no farther than its own. A policy may beat it slightly.")
	fmt.Fprintln(w, "best fixed set: also offline, the blobs whose charges fit in the budget with the most total probability at the true")
	fmt.Fprintln(w, "popularity, held throughout: an exact 0/1 knapsack where its table is small enough, else filled greedily by probability per")
	fmt.Fprintln(w, "byte (\"greedy fixed set\"; the fractional knapsack then bounds what any fixed set can expect). The reads are independent draws,")
	fmt.Fprintln(w, "so no online policy can expect to serve more reads from memory than the best fixed set; the greedy ceiling does better only")
	fmt.Fprintln(w, "because it knows the future. Small reads hit or miss as whole-blob reads do, so their ceilings differ only in bytes.")
	for _, r := range run.Results {
		c := r.Cache
		if c == nil || c.Scan {
			continue
		}
		if c.StatsReads != c.Overall.Reads || c.StatsHitRatio != c.Overall.Ratio() {
			fmt.Fprintf(w, "NOTE: %s s=%g: Stats counts %d reads (%s from memory) over the read phase, the bench %d (%s).\n",
				r.Label, c.Zipf, c.StatsReads, pct(c.StatsHitRatio), c.Overall.Reads, pct(c.Overall.Ratio()))
		}
	}
	fmt.Fprintf(w, "Total time %.1f s.\n", run.Seconds)
}

// scanWindows returns the before, during and after windows of the scan
// test over the buckets of c.
func scanWindows(c *CacheResult) (before, during, after Window) {
	b, d, a := scanPhases()
	return span(c.Buckets, b[0], b[1]), span(c.Buckets, d[0], d[1]), span(c.Buckets, a[0], a[1])
}

// points formats a difference of ratios in percentage points.
func points(d float64) string {
	if math.IsNaN(d) {
		return "–"
	}
	return fmt.Sprintf("%+.1f points", 100*d)
}

// rssCell formats the peak RSS above baseline of r.
func rssCell(r Result) string {
	if r.PeakHWM <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(r.PeakRSSAboveBaseline)/(1<<20))
}
